"""Exporting the trained model to ONNX and TorchScript, and proving the ONNX.

The served artefact is ONNX. Its tensor names are fixed so the operator and
the servers can rely on them: ``input`` FP32 [-1, n_features]; for
classification ``probabilities`` FP32 [-1, C] and ``label`` INT64 [-1]; for
regression ``prediction`` FP32 [-1, 1]. An export is only kept after
onnxruntime has run it on the test split and agreed with PyTorch.

NB: this uses torch's TorchScript-based ONNX exporter (``dynamo=False``). The
torch.export-based one needs the ``onnxscript`` package and cannot trace a
TorchScript body; switch once the pinned torch drops the older exporter.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from .architectures import ServingModel, output_names
from .errors import ExportFailed, ExportMismatch

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OPSET = 17
# Probabilities are compared absolutely. A regression prediction is compared
# relative to its own scale as well: float32 holds about 7 digits, so a target
# in the hundreds cannot agree to 1e-4 absolutely between two correct runtimes.
ABSOLUTE_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ExportCheck:
    rows: int
    max_abs_diff: dict[str, float]


def export_onnx(model: ServingModel, path: Path, *, features: int, task: str) -> None:
    """Writes ``model`` as ONNX with a dynamic batch dimension."""
    names = list(output_names(task))
    dynamic = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}}
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            # Exported from the scripted model: a TorchScript body (a base
            # loaded from model.pt) cannot be traced as part of a Python module.
            scripted = torch.jit.script(model)
            torch.onnx.export(
                scripted, (torch.zeros(2, features),), str(path),
                input_names=[INPUT_NAME], output_names=names, dynamic_axes=dynamic,
                opset_version=OPSET, dynamo=False,
            )
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportFailed(f"ONNX export failed: {str(exc)[:800]}") from exc


def export_torchscript(model: ServingModel, path: Path) -> None:
    """Writes a TorchScript copy (what Triton's PyTorch backend loads)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.script(model.cpu().eval())
        scripted.save(str(path))
    except Exception as exc:
        raise ExportFailed(f"TorchScript export failed: {str(exc)[:800]}") from exc


def torch_outputs(model: ServingModel, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    with torch.no_grad():
        result = model.cpu().eval()(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
    tensors = result if isinstance(result, tuple) else (result,)
    return {name: t.numpy() for name, t in zip(output_names(task), tensors, strict=True)}


def onnx_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {INPUT_NAME: np.ascontiguousarray(x, np.float32)})
    return dict(zip(names, values, strict=True))


def verify_onnx(path: Path, model: ServingModel, x: np.ndarray, task: str) -> ExportCheck:
    """Runs the ONNX file and PyTorch on ``x``; raises ExportMismatch if they differ."""
    expected = torch_outputs(model, x, task)
    try:
        actual = onnx_outputs(path, x)
    except Exception as exc:
        raise ExportMismatch(f"onnxruntime cannot run the export: {str(exc)[:800]}") from exc

    diffs: dict[str, float] = {}
    for name, want in expected.items():
        got = actual.get(name)
        if got is None or got.shape != want.shape or got.dtype != want.dtype:
            found = None if got is None else f"{got.dtype}{list(got.shape)}"
            raise ExportMismatch(f"output {name!r}: expected {want.dtype}{list(want.shape)}, "
                                 f"onnxruntime gave {found}")
        if name == "label":
            continue  # checked against the probabilities below
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        diffs[name] = float(diff.max(initial=0.0))
        allowed = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(want)
        if np.any(diff > allowed):
            row = int(np.unravel_index(np.argmax(diff - allowed), diff.shape)[0])
            raise ExportMismatch(f"output {name!r} differs between onnxruntime and PyTorch by "
                                 f"up to {diffs[name]:.3g} (row {row}); the limit is "
                                 f"{ABSOLUTE_TOLERANCE:g}")

    if "label" in expected:
        _check_labels(expected, actual)
    logger.info("The ONNX export agrees with PyTorch on %d test rows (max abs diff %s).",
                x.shape[0], {k: f"{v:.2g}" for k, v in diffs.items()})
    return ExportCheck(int(x.shape[0]), diffs)


def _check_labels(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> None:
    """Labels must match wherever the top two probabilities are not a near tie."""
    differs = expected["label"] != actual["label"]
    if not differs.any():
        return
    top2 = np.sort(expected["probabilities"], axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) <= 2 * ABSOLUTE_TOLERANCE
    if np.any(differs & ~near_tie):
        row = int(np.flatnonzero(differs & ~near_tie)[0])
        raise ExportMismatch(f"output 'label' differs between onnxruntime and PyTorch at row "
                             f"{row} ({actual['label'][row]} vs {expected['label'][row]})")
