"""The training loop: epochs of mini-batch steps, early stopping, best weights.

One loop serves every caller (a Job, the pre-training helper, the benchmark),
single process or data-parallel. The data sits in tensors on the training
device; each epoch draws this rank's row order from a ``DistributedSampler``
(with one replica it is a seeded permutation) and steps through it by slicing
index tensors, so no per-sample Python runs inside an epoch. That is what
keeps the loop within a few percent of a hand-written one.

After every epoch the whole validation split is scored on the watched metric.
Every rank scores it (the weights are identical after each all-reduce), and
rank 0's stop decision is broadcast so no rank can wait on a collective the
others left. The best weights are restored at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from .architectures import Network
from .config import HyperParameters
from .errors import Interrupted, TrainingDiverged
from .metrics import Metrics, classification_metrics, is_better, regression_metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Objective:
    """The task's loss and how its raw outputs turn into metrics."""

    task: str
    metric: str
    target_mean: float = 0.0
    target_std: float = 1.0

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return nn.functional.cross_entropy(outputs, target)
        return nn.functional.mse_loss(outputs[:, 0], target)

    def score(self, outputs: torch.Tensor, target: np.ndarray, *,
              only: str | None = None) -> Metrics:
        """Metrics of network outputs against the target on its original scale."""
        if self.task == "classification":
            probabilities = torch.softmax(outputs.float(), dim=1).cpu().numpy()
            return classification_metrics(target, probabilities, only=only)
        predicted = outputs[:, 0].double().cpu().numpy() * self.target_std + self.target_mean
        return regression_metrics(target, predicted, only=only)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float
    metric: str
    value: float
    best_value: float
    best_epoch: int
    elapsed_seconds: float


@dataclass(frozen=True)
class FitResult:
    epochs_run: int
    best_epoch: int
    best_value: float
    stopped_early: bool
    train_seconds: float  # in the mini-batch steps alone
    samples_seen: int  # by this rank


@dataclass(frozen=True)
class Partition:
    """This process's place in a data-parallel group (rank 0 of 1 alone)."""

    rank: int = 0
    world_size: int = 1


def make_optimizer(parameters: Iterator[nn.Parameter],
                   hp: HyperParameters) -> torch.optim.Optimizer:
    if hp.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    return torch.optim.SGD(parameters, lr=hp.learning_rate, momentum=0.9,
                           weight_decay=hp.weight_decay)


def epoch_order(sampler: DistributedSampler[int], epoch: int,
                device: torch.device) -> torch.Tensor:
    """This rank's row order for one epoch, as an index tensor on the device.

    With one replica the sampler's order is ``randperm`` seeded with
    ``seed + epoch``; drawing it directly skips a round trip through a Python
    list of every row index.
    """
    sampler.set_epoch(epoch)
    if sampler.num_replicas == 1:
        generator = torch.Generator().manual_seed(sampler.seed + sampler.epoch)
        return torch.randperm(len(sampler), generator=generator).to(device)
    return torch.as_tensor(list(sampler), dtype=torch.long, device=device)


def fit(
    network: Network,
    *,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: np.ndarray,
    objective: Objective,
    hp: HyperParameters,
    partition: Partition = Partition(),
    on_epoch: Callable[[EpochReport], None] | None = None,
    stop: threading.Event | None = None,
) -> FitResult:
    """Trains ``network`` in place and leaves it holding its best weights.

    ``x_train``/``y_train``/``x_val`` are on the training device and already
    standardised; ``y_val`` is the validation target on its original scale.
    Once ``stop`` is set the loop raises Interrupted before its next step.

    NB: with several workers a rank that stops leaves the others waiting in an
    all-reduce until they are stopped too (a deleted Job stops every pod).
    """
    stop = stop or threading.Event()
    distributed = partition.world_size > 1
    device = x_train.device
    model: nn.Module = network
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(network, device_ids=ids)
    optimizer = make_optimizer(network.parameters(), hp)
    # The sampler only needs the row count: a range stands in for a dataset.
    rows_only = cast(Dataset[int], range(x_train.shape[0]))
    sampler: DistributedSampler[int] = DistributedSampler(
        rows_only, num_replicas=partition.world_size, rank=partition.rank, shuffle=True,
        seed=hp.seed)
    # The batch size is global: each replica takes its share.
    batch = max(1, hp.batch_size // partition.world_size)

    best_value: float | None = None
    best_epoch = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    epoch = 0
    stopped_early = False
    train_seconds = 0.0
    samples_seen = 0
    started = time.perf_counter()

    for epoch in range(1, hp.epochs + 1):
        # The mini-batch steps: nothing here waits on the device.
        order = epoch_order(sampler, epoch, device)
        tick = time.perf_counter()
        model.train()
        losses: list[torch.Tensor] = []
        for start in range(0, order.shape[0], batch):
            if stop.is_set():
                raise Interrupted(f"stopped by a signal in epoch {epoch}")
            rows = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = objective.loss(model(x_train[rows]), y_train[rows])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        train_loss = _mean_loss(losses, order.shape[0], batch, distributed)
        train_seconds += time.perf_counter() - tick
        samples_seen += int(order.shape[0])

        # Score the validation split on the watched metric only.
        # no_grad, not inference_mode: a TorchScript body would keep inference
        # tensors in its graph cache and refuse them in the next backward.
        network.eval()
        with torch.no_grad():
            value = objective.score(network(x_val), y_val, only=objective.metric)
        current = value.get(objective.metric, float("nan"))
        if is_better(objective.metric, current, best_value):
            best_value, best_epoch, stale = current, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1

        if on_epoch is not None:
            on_epoch(EpochReport(epoch, train_loss, objective.metric, current,
                                 float(best_value if best_value is not None else current),
                                 best_epoch, time.perf_counter() - started))
        patience_ran_out = 0 < hp.early_stopping_patience <= stale
        if distributed:
            patience_ran_out = _agree(patience_ran_out, device)
        if patience_ran_out:
            stopped_early = True
            logger.info("Stopping early after epoch %d: %s has not improved on %.6g "
                        "(epoch %d) for %d epochs.", epoch, objective.metric,
                        best_value, best_epoch, stale)
            break

    if best_state is None:
        raise TrainingDiverged(f"the validation {objective.metric} was not a number in any of "
                               f"{epoch} epochs; lower the learning rate")
    network.load_state_dict(best_state)
    network.eval()
    return FitResult(epoch, best_epoch, float(best_value if best_value is not None else 0.0),
                     stopped_early, train_seconds, samples_seen)


def _mean_loss(losses: list[torch.Tensor], rows: int, batch: int, distributed: bool) -> float:
    """Mean loss per sample over the epoch (the last batch may be short)."""
    weights = torch.full((len(losses),), float(batch), device=losses[0].device)
    weights[-1] = rows - batch * (len(losses) - 1)
    total = torch.stack([(torch.stack(losses) * weights).sum(), weights.sum()])
    if distributed:
        dist.all_reduce(total)
    return float(total[0] / total[1])


def _agree(stop: bool, device: torch.device) -> bool:
    """Rank 0's stop decision, shared so no rank leaves a collective early."""
    flag = torch.tensor([1 if stop else 0], dtype=torch.int64, device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())
