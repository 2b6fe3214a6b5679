"""The storage initializer: fetch a model into Triton's repository layout, verified."""
