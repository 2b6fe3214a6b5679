"""Errors raised while reading a repository or loading a model.

They never reach a client directly: a model that fails to load is recorded as
UNAVAILABLE with the error's message as its reason, and the server keeps going.
"""

from __future__ import annotations


class RepositoryError(Exception):
    """Something in the model repository cannot be served."""


class ModelConfigError(RepositoryError):
    """config.pbtxt is malformed or disagrees with the model file."""


class ModelLoadError(RepositoryError):
    """A model version could not be loaded (missing file, bad graph, runtime error)."""
