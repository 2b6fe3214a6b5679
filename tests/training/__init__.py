"""End-to-end tests of the trainer through its real commands."""
