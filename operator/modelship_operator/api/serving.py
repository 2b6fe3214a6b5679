"""What a ModelDeployment serves and how: the model, the runtime and the scale.

The storage-URI rule, decided here and enforced by the API server:

- `pvc://<claim>/<path>`, `file:///<path>` and `s3://<bucket>/<key>` may name
  either a directory in Triton's layout (`<version>/model.onnx`, `model.pt` or
  `model.savedmodel/`, plus an optional `config.pbtxt`) or a single model file,
  which is served as version 1.
- `http://` and `https://` cannot list a directory, so they must name one file.
- A file's extension fixes the format: `.onnx` is onnx, `.pt`/`.pth` is
  torchscript. A SavedModel is always a directory, so never an http(s) URI.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from modelship_operator.api.base import (
    GPU_RESOURCE,
    MODEL_NAME,
    TENSOR_NAME,
    ApiModel,
    ResourceRequirements,
    Rule,
    immutable,
    validations,
)

ModelFormat = Literal["onnx", "torchscript", "savedmodel"]
RuntimeKind = Literal["onnxruntime", "triton"]
TensorDatatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]

STORAGE_URI = r"^(pvc|file|s3|https?)://\S+$"
# An optional query string lets presigned https URLs through.
_ONNX_FILE = r"[.]onnx([?][^#]*)?$"
_TORCHSCRIPT_FILE = r"[.](pt|pth)([?][^#]*)?$"
_MODEL_FILE = r"[.](onnx|pt|pth)([?][^#]*)?$"

MAX_TENSORS = 64

_UNIQUE_TENSOR_NAMES = Rule(
    "self.all(t, self.exists_one(u, u.name == t.name))",
    "tensor names must be unique",
)


# Names are config.pbtxt map keys; the values of the onnxruntime server's own
# parameters are checked here, so a typo is refused by the API server instead of
# being ignored (or failing the model's load) in a pod.
PARAMETER_RULES = (
    Rule(
        "self.all(k, k.matches('^[A-Za-z][A-Za-z0-9_.-]{0,63}$'))",
        "runtime.parameters names start with a letter and hold letters, digits, '_', '.' "
        "and '-' (at most 64)",
    ),
    Rule(
        "self.all(k, !(k in ['intra_op_thread_count', 'inter_op_thread_count']) || "
        "(self[k].matches('^[0-9]{1,3}$') && int(self[k]) <= 256))",
        "runtime.parameters intra_op_thread_count and inter_op_thread_count are whole "
        'numbers of threads from 0 to 256, such as "2"',
    ),
    Rule(
        "!('allow_spinning' in self) || self['allow_spinning'] in ['0', '1']",
        'runtime.parameters allow_spinning is "0" or "1"',
    ),
    Rule(
        "!('execution_thread' in self) || self['execution_thread'] in ['auto', 'worker']",
        'runtime.parameters execution_thread is "auto" or "worker"',
    ),
)


class TensorSpec(ApiModel):
    """One tensor of the model's signature."""

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=TENSOR_NAME,
        description="Tensor name as the model declares it (for ONNX, the graph's input or "
        "output name).",
    )
    datatype: TensorDatatype = Field(
        description="Element type, named as in the Open Inference Protocol (FP32, INT64, "
        "BYTES, ...)."
    )
    shape: list[Annotated[int, Field(ge=-1)]] = Field(
        max_length=8,
        description="Dimensions of one item: without the batch dimension when "
        "runtime.batching is set, with it otherwise. -1 marks a dimension of variable size.",
    )


class ModelSource(ApiModel):
    """The model to serve: its format, where it is stored and which version."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "!self.storageUri.startsWith('pvc://') || "
                "self.storageUri.matches('^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/|$)')",
                "a pvc:// storageUri reads pvc://<claim>/<path>, where <claim> is the name of "
                "a PersistentVolumeClaim in the same namespace",
                field_path=".storageUri",
            ),
            Rule(
                "!self.storageUri.startsWith('file://') || "
                "self.storageUri.startsWith('file:///')",
                "a file:// storageUri needs an absolute path: file:///<path>",
                field_path=".storageUri",
            ),
            Rule(
                f"!self.storageUri.matches('{_ONNX_FILE}') || self.format == 'onnx'",
                "storageUri names an .onnx file, so format must be onnx",
                field_path=".format",
            ),
            Rule(
                f"!self.storageUri.matches('{_TORCHSCRIPT_FILE}') || self.format == 'torchscript'",
                "storageUri names a .pt file, so format must be torchscript",
                field_path=".format",
            ),
            Rule(
                "self.format != 'savedmodel' || !self.storageUri.matches('^https?://')",
                "format savedmodel is a directory and http(s) cannot list one: store it "
                "under a pvc://, file:// or s3:// URI",
                field_path=".storageUri",
            ),
            Rule(
                "self.format == 'savedmodel' || !self.storageUri.matches('^https?://') || "
                f"self.storageUri.matches('{_MODEL_FILE}')",
                "an http(s) storageUri must name one model file (.onnx for onnx, .pt for "
                "torchscript): http cannot list a directory",
                field_path=".storageUri",
            ),
            Rule(
                "self.format != 'torchscript' || (has(self.inputs) && has(self.outputs))",
                "format torchscript needs model.inputs and model.outputs: a TorchScript file "
                "does not declare its tensors' names, types and shapes",
            ),
        )
    )

    format: ModelFormat = Field(
        description="How the model is saved: onnx (served by either runtime), torchscript or "
        "savedmodel (both served by triton only). Immutable: switching formats means a new "
        "ModelDeployment.",
        json_schema_extra=immutable(
            "model.format", "create a new ModelDeployment to serve another format"
        ),
    )
    storage_uri: str = Field(
        max_length=2048,
        pattern=STORAGE_URI,
        description="Where the model is stored: pvc://<claim>/<path>, file:///<path>, "
        "s3://<bucket>/<key>, or http(s)://. A directory holds Triton's layout "
        "(<version>/model.onnx, model.pt or model.savedmodel/, and an optional config.pbtxt); "
        "a single .onnx or .pt file is served as version 1. http(s) URIs must name a file.",
    )
    version: str = Field(
        "latest",
        max_length=10,
        pattern=r"^(latest|[1-9][0-9]{0,8})$",
        description='Which version to serve: "latest" serves the highest version stored, '
        "then each fine-tuned version that passes the promotion gate; a number such as "
        '"3" pins that version (fine-tuning still runs and records its results, but does '
        "not change what is served).",
    )
    name: str | None = Field(
        None,
        max_length=128,
        pattern=MODEL_NAME,
        description="Model name in the repository and on the inference endpoints "
        "(/v2/models/<name>). Defaults to metadata.name.",
    )
    inputs: list[TensorSpec] | None = Field(
        None,
        max_length=MAX_TENSORS,
        description="Input tensors. Optional for onnx and savedmodel (read from the model); "
        "required for torchscript.",
        json_schema_extra=validations(_UNIQUE_TENSOR_NAMES),
    )
    outputs: list[TensorSpec] | None = Field(
        None,
        max_length=MAX_TENSORS,
        description="Output tensors. Optional for onnx and savedmodel (read from the model); "
        "required for torchscript.",
        json_schema_extra=validations(_UNIQUE_TENSOR_NAMES),
    )


class Batching(ApiModel):
    """Dynamic batching: concurrent requests are merged into one model call."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "!has(self.preferredBatchSizes) || "
                "self.preferredBatchSizes.all(s, s <= self.maxBatchSize)",
                "every preferredBatchSizes entry must be at most maxBatchSize",
                field_path=".preferredBatchSizes",
            )
        )
    )

    max_batch_size: int = Field(
        8,
        ge=1,
        le=4096,
        description="Largest batch the server forms, and the model's max_batch_size in "
        "config.pbtxt.",
    )
    preferred_batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        None,
        max_length=16,
        description="Batch sizes the batcher tries to form, each at most maxBatchSize.",
    )
    max_queue_delay_microseconds: int = Field(
        100,
        ge=0,
        le=10_000_000,
        description="How long a request may wait for others to fill a batch, in "
        "microseconds. 0 batches only requests that are already waiting.",
    )


class RuntimeSpec(ApiModel):
    """The model server that runs the model."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.kind == 'triton' || !has(self.resources) || ("
                f"(!has(self.resources.limits) || !('{GPU_RESOURCE}' in self.resources.limits))"
                " && (!has(self.resources.requests) || "
                f"!('{GPU_RESOURCE}' in self.resources.requests)))",
                f"{GPU_RESOURCE} needs runtime.kind triton: the onnxruntime server runs on CPU",
                field_path=".resources",
            ),
        )
    )

    kind: RuntimeKind = Field(
        "onnxruntime",
        description="onnxruntime: Modelship's own ONNX Runtime server (CPU, format onnx). "
        "triton: NVIDIA Triton Inference Server (any format, GPUs). Both speak the Open "
        "Inference Protocol over HTTP and gRPC. Immutable.",
        json_schema_extra=immutable(
            "runtime.kind", "create a new ModelDeployment to switch runtimes"
        ),
    )
    image: str | None = Field(
        None,
        max_length=512,
        pattern=r"^\S+$",
        description="Container image of the server, overriding the operator's default for "
        "this kind.",
    )
    resources: ResourceRequirements | None = Field(
        None,
        description="CPU, memory and GPU for each server container. GPUs need kind triton.",
    )
    instances: int = Field(
        1,
        ge=1,
        le=64,
        description="Copies of the model each server runs side by side (Triton's "
        "instance_group count); more instances serve more requests at once.",
    )
    batching: Batching | None = Field(
        None,
        description="Dynamic batching. Absent: each request is run on its own.",
    )
    parameters: dict[str, Annotated[str, Field(max_length=256)]] | None = Field(
        None,
        max_length=32,
        description="Per-model parameters, written into the parameters of config.pbtxt for "
        "the server to read. The onnxruntime server reads intra_op_thread_count and "
        "inter_op_thread_count (threads per instance; default: from the CPU limit), "
        'allow_spinning ("0" or "1") and execution_thread ("auto", or "worker" to keep '
        "every run off the event loop); Triton passes them to its backend.",
        json_schema_extra=validations(*PARAMETER_RULES),
    )


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the servers, on CPU utilisation."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
                field_path=".minReplicas",
            )
        )
    )

    min_replicas: int = Field(1, ge=1, le=1000, description="Fewest servers to keep running.")
    max_replicas: int = Field(ge=1, le=1000, description="Most servers to scale out to.")
    target_cpu_utilization_percentage: int = Field(
        80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU use, as a percentage of the CPU request, that the "
        "autoscaler aims for.",
    )
