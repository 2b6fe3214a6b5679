"""Modelship's API: the typed models behind the ModelDeployment and ModelEnsemble CRDs.

These models are the single source of truth. `crd.py` generates the CRDs from
them, and the operator reads every object through them:

    md = ModelDeployment.from_k8s(body)      # raises InvalidResourceError
    md.spec.runtime.kind, md.model_name()
    patch = {"status": status.to_k8s()}
"""

from modelship_operator.api.base import (
    API_VERSION,
    GROUP,
    GPU_RESOURCE,
    VERSION,
    ApiModel,
    InvalidResourceError,
    ResourceRequirements,
    Rule,
)
from modelship_operator.api.deployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from modelship_operator.api.ensemble import (
    Member,
    MemberStatus,
    ModelEnsemble,
    ModelEnsembleSpec,
    ModelEnsembleStatus,
    Parallel,
    Step,
)
from modelship_operator.api.finetuning import (
    BaseModelSpec,
    Dataset,
    FineTuning,
    FineTuningStatus,
    HyperParameters,
    Promotion,
    Split,
    VersionRecord,
)
from modelship_operator.api.meta import Condition, ObjectMeta, Resource
from modelship_operator.api.monitoring import Monitoring
from modelship_operator.api.serving import (
    Autoscaling,
    Batching,
    ModelSource,
    RuntimeSpec,
    TensorSpec,
)

__all__ = [
    "API_VERSION",
    "GPU_RESOURCE",
    "GROUP",
    "VERSION",
    "ApiModel",
    "Autoscaling",
    "BaseModelSpec",
    "Batching",
    "Condition",
    "Dataset",
    "FineTuning",
    "FineTuningStatus",
    "HyperParameters",
    "InvalidResourceError",
    "Member",
    "MemberStatus",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelEnsemble",
    "ModelEnsembleSpec",
    "ModelEnsembleStatus",
    "ModelSource",
    "Monitoring",
    "ObjectMeta",
    "Parallel",
    "Promotion",
    "Resource",
    "ResourceRequirements",
    "Rule",
    "RuntimeSpec",
    "Split",
    "Step",
    "TensorSpec",
    "VersionRecord",
]
