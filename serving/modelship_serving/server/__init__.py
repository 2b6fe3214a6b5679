"""The model server: one core (`core.ModelServer`) behind HTTP and gRPC adapters."""

from modelship_serving.server.core import ModelServer

__all__ = ["ModelServer"]
