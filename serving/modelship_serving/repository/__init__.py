"""The model repository: Triton's layout on disk and config.pbtxt in Triton's schema."""

from modelship_serving.repository.errors import (
    ModelConfigError,
    ModelLoadError,
    RepositoryError,
)
from modelship_serving.repository.layout import ModelRepository, ModelSource, select_versions

__all__ = [
    "ModelConfigError", "ModelLoadError", "RepositoryError",
    "ModelRepository", "ModelSource", "select_versions",
]
