"""The fine-tuning pipeline: the steps a practitioner takes, in order.

load the dataset -> split it (seeded, stratified for classification) -> learn
standardisation from train -> load the base model and adapt its head -> train
with early stopping -> score validation and test -> export ONNX and TorchScript,
prove the ONNX against PyTorch -> write checkpoint, metrics and reference
statistics -> publish the version atomically.

Every caller goes through ``run``: the Job's command, the pre-training helper
and the tests. Only rank 0 of a data-parallel group writes anything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..monitoring.reference import build_reference
from . import distributed, triton_config
from .architectures import ClassifierExport, Network, RegressorExport, ServingModel
from .base_model import ARCHITECTURE_FILE, CHECKPOINT_FILE, TORCHSCRIPT_FILE, prepare_network
from .config import LOWER_IS_BETTER, TrainerConfig
from .datasets import load_dataset
from .export import INPUT_NAME, export_onnx, export_torchscript, torch_outputs, verify_onnx
from .loop import FitResult, Objective, Partition, fit
from .metrics import Metrics, classification_metrics, regression_metrics
from .progress import Progress
from .splitting import Standardizer, class_count, split_rows
from .versiondir import check_free, staged_version, version_path

logger = logging.getLogger(__name__)

CPU_LIMIT_ENV = "MODELSHIP_CPU_LIMIT"


@dataclass(frozen=True)
class Prepared:
    """The data a run trains on, split and standardised."""

    x: np.ndarray  # raw features, float32
    y: np.ndarray  # target, float64
    train: np.ndarray  # row indices
    validation: np.ndarray
    test: np.ndarray
    inputs: Standardizer
    target: Standardizer | None  # regression only
    classes: int  # 0 for regression
    feature_names: list[str]


def run(config: TrainerConfig, *, show_progress: bool | None = None,
        stop: threading.Event | None = None) -> dict[str, Any]:
    """Trains, evaluates and (on rank 0) publishes a version; returns the summary.

    Setting ``stop`` makes training end at the next step with Interrupted.
    """
    ft = config.fine_tuning
    hp = ft.hyper_parameters
    partition = distributed.partition_from_env(ft.workers)
    device = pick_device(partition)
    make_deterministic(hp.seed)
    writer = partition.rank == 0
    if writer:
        check_free(config.output_repository, config.model_name, config.version)

    distributed.join(partition, device)
    try:
        data = prepare_data(config)
        prepared = prepare_network(
            ft.base_model, input_features=data.x.shape[1],
            outputs=data.classes if ft.task == "classification" else 1,
            task=ft.task, feature_names=data.feature_names,
        )
        network = prepared.network.to(device)
        objective = Objective(ft.task, ft.metric, *_target_scale(data))
        progress = Progress(epochs=hp.epochs, show_bar=show_progress,
                            labels={"model": config.model_name, "version": config.version,
                                    "rank": partition.rank})
        try:
            result = fit(network, **_tensors(data, device), objective=objective, hp=hp,
                         partition=partition, on_epoch=progress, stop=stop)
        finally:
            progress.close()
    finally:
        distributed.leave()

    serving = serving_model(network.cpu(), data, ft.task)
    scores = {split: score(serving, data.x[getattr(data, split)], data.y[getattr(data, split)],
                           ft.task) for split in ("validation", "test")}
    metrics = metrics_document(ft.task, ft.metric, scores, result, data)
    logger.info("Trained %d epochs (best %d); test %s.", result.epochs_run, result.best_epoch,
                metrics["test"], extra={"fields": {"event": "evaluated", "metrics": metrics}})

    if not writer:
        return summary(config, metrics, reason="WorkerFinished",
                       message=f"rank {partition.rank} finished; rank 0 publishes the version")

    target = version_path(config.output_repository, config.model_name, config.version)
    with staged_version(config.output_repository, config.model_name, config.version) as stage:
        check = write_version(stage, serving, network, prepared.architecture.to_json(),
                              data, ft.task, metrics)
    triton_config.write_if_absent(target.parent, config.model_name,
                                  features=data.x.shape[1], task=ft.task, classes=data.classes)
    result_summary = summary(
        config, metrics, reason="VersionPublished",
        message=f"version {config.version} published at {target}; test {ft.metric} "
                f"{metrics['test'].get(ft.metric, float('nan')):.4g}",
    )
    result_summary["exportCheck"] = check
    return result_summary


def pick_device(partition: Partition) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", partition.rank % torch.cuda.device_count())
    return torch.device("cpu")


def make_deterministic(seed: int) -> None:
    """Seeds every generator and asks torch for deterministic kernels."""
    # cuBLAS needs this before the first CUDA call to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # Exact on the CPU; on a GPU an op without a deterministic kernel warns
    # rather than failing the Job.
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    limit = os.environ.get(CPU_LIMIT_ENV)
    if limit:
        try:
            torch.set_num_threads(max(1, math.ceil(float(limit))))
        except ValueError:
            logger.warning("Ignoring %s=%r: not a number of cores.", CPU_LIMIT_ENV, limit)


def prepare_data(config: TrainerConfig) -> Prepared:
    ft = config.fine_tuning
    table = load_dataset(ft.dataset)
    classification = ft.task == "classification"
    classes = class_count(table.target, ft.num_classes) if classification else 0
    split = split_rows(table.rows, ft.dataset.split, seed=ft.hyper_parameters.seed,
                       labels=table.target.astype(np.int64) if classification else None)
    logger.info("Split %d rows into %d train, %d validation and %d test rows.", table.rows,
                split.train.size, split.validation.size, split.test.size)
    return Prepared(
        x=table.features, y=table.target, train=split.train, validation=split.validation,
        test=split.test, inputs=Standardizer.fit(table.features[split.train]),
        target=None if classification else Standardizer.fit(table.target[split.train]),
        classes=classes, feature_names=list(table.feature_names),
    )


def _target_scale(data: Prepared) -> tuple[float, float]:
    if data.target is None:
        return 0.0, 1.0
    return float(data.target.mean[0]), float(data.target.std[0])


def _tensors(data: Prepared, device: torch.device) -> dict[str, Any]:
    x_train = torch.from_numpy(data.inputs.apply(data.x[data.train])).to(device)
    x_val = torch.from_numpy(data.inputs.apply(data.x[data.validation])).to(device)
    raw_y = data.y[data.train]
    if data.target is None:
        y_train = torch.from_numpy(raw_y.astype(np.int64)).to(device)
    else:
        y_train = torch.from_numpy(data.target.apply(raw_y[:, None])[:, 0]).to(device)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val,
            "y_val": data.y[data.validation]}


def serving_model(network: Network, data: Prepared, task: str) -> ServingModel:
    mean = torch.from_numpy(data.inputs.mean)
    std = torch.from_numpy(data.inputs.std)
    if task == "classification":
        return ClassifierExport(network, mean, std).eval()
    target_mean, target_std = _target_scale(data)
    return RegressorExport(network, mean, std, target_mean, target_std).eval()


def score(model: ServingModel, x: np.ndarray, y: np.ndarray, task: str) -> Metrics:
    """All metrics of the task, from what the exported model would answer."""
    outputs = torch_outputs(model, x, task)
    if task == "classification":
        return classification_metrics(y, outputs["probabilities"].astype(np.float64))
    return regression_metrics(y, outputs["prediction"])


def metrics_document(task: str, metric: str, scores: dict[str, Metrics], result: FitResult,
                     data: Prepared) -> dict[str, Any]:
    return {
        "task": task,
        "metric": metric,
        "test": scores["test"],
        "validation": scores["validation"],
        "epochs": result.epochs_run,
        "samples": {"train": int(data.train.size), "validation": int(data.validation.size),
                    "test": int(data.test.size)},
    }


def write_version(stage: Path, serving: ServingModel, network: torch.nn.Module,
                  architecture: dict[str, Any], data: Prepared, task: str,
                  metrics: dict[str, Any]) -> dict[str, Any]:
    """Writes every file of a version into ``stage``; returns the export check."""
    features = data.x.shape[1]
    export_onnx(serving, stage / "model.onnx", features=features, task=task)
    check = verify_onnx(stage / "model.onnx", serving, data.x[data.test], task)
    export_torchscript(serving, stage / TORCHSCRIPT_FILE)
    torch.save(network.state_dict(), stage / CHECKPOINT_FILE)

    x_val = data.x[data.validation]
    reference = build_reference({INPUT_NAME: x_val}, torch_outputs(serving, x_val, task))
    documents = {ARCHITECTURE_FILE: architecture, "metrics.json": metrics,
                 "reference.json": reference}
    for name, body in documents.items():
        (stage / name).write_text(json.dumps(body, indent=2) + "\n")
    return {"rows": check.rows, "maxAbsDiff": check.max_abs_diff}


def gate(metric: str, value: float | None, threshold: float | None,
         serving_metrics: dict[str, Any] | None) -> dict[str, Any]:
    """How the new version compares with the promotion floor and the serving one.

    Informational: the operator decides promotion; this saves it reading files.
    """
    lower = metric in LOWER_IS_BETTER
    out: dict[str, Any] = {"metric": metric, "value": value}
    if threshold is not None and value is not None:
        out["threshold"] = threshold
        out["passesThreshold"] = value <= threshold if lower else value >= threshold
    served = ((serving_metrics or {}).get("test") or {}).get(metric)
    if isinstance(served, (int, float)) and value is not None:
        out["servingValue"] = served
        out["beatsServing"] = value < served if lower else value > served
    return out


def summary(config: TrainerConfig, metrics: dict[str, Any], *, reason: str,
            message: str) -> dict[str, Any]:
    ft = config.fine_tuning
    promotion = ft.promotion
    return {
        "phase": "Succeeded",
        "version": config.version,
        "metrics": {"test": metrics["test"], "validation": metrics["validation"]},
        "metric": ft.metric,
        "epochs": metrics["epochs"],
        "samples": metrics["samples"],
        "gate": gate(ft.metric, metrics["test"].get(ft.metric),
                     promotion.threshold if promotion else None, config.serving_metrics),
        "reason": reason,
        "message": message,
    }
