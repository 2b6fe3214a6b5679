"""A default ``config.pbtxt`` for a model the trainer created.

The operator owns a deployed model's configuration (batching, instances). When
the trainer publishes into a model directory that has none yet (a demo's
pre-trained base, a first run) it leaves a minimal one describing the ONNX
signature, so either runtime can load the repository as it stands. An existing
file is never touched.
"""

from __future__ import annotations

from pathlib import Path

from .versiondir import write_text_atomically

CONFIG_FILE = "config.pbtxt"


def render(model: str, *, features: int, task: str, classes: int) -> str:
    if task == "classification":
        outputs = [("probabilities", "TYPE_FP32", [-1, classes]), ("label", "TYPE_INT64", [-1])]
    else:
        outputs = [("prediction", "TYPE_FP32", [-1, 1])]
    lines = [f'name: "{model}"', 'platform: "onnxruntime_onnx"', "max_batch_size: 0",
             _tensor("input", [("input", "TYPE_FP32", [-1, features])])]
    lines.append(_tensor("output", outputs))
    return "\n".join(lines) + "\n"


def _tensor(kind: str, tensors: list[tuple[str, str, list[int]]]) -> str:
    items = [f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ] }}'
             for name, dtype, dims in tensors]
    return f"{kind} [\n" + ",\n".join(items) + "\n]"


def write_if_absent(model_dir: Path, model: str, *, features: int, task: str,
                    classes: int) -> bool:
    """Writes the default config unless one exists; True when it wrote one."""
    path = model_dir / CONFIG_FILE
    if path.exists():
        return False
    write_text_atomically(path, render(model, features=features, task=task, classes=classes))
    return True
