"""Modelship's control plane: API types, builders, reconcilers and the CLI."""

__version__ = "0.1.0"
