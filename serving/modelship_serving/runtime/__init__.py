"""Running models: ONNX Runtime sessions, schedulers and the set of loaded models."""

from modelship_serving.runtime.manager import LoadedVersion, ModelManager
from modelship_serving.runtime.session import BatchObserver

__all__ = ["BatchObserver", "LoadedVersion", "ModelManager"]
