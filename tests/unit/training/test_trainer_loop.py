"""The training loop is deterministic, stops early and keeps the best weights."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from modelship_serving.training.architectures import Architecture, build_network
from modelship_serving.training.config import HyperParameters
from modelship_serving.training.loop import EpochReport, Objective, epoch_order, fit
from modelship_serving.training.pipeline import make_deterministic


def blobs(rows: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    x = rng.normal(size=(rows, 4)) + y[:, None] * 1.5
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def train(hp: HyperParameters, reports: list[EpochReport] | None = None):
    make_deterministic(hp.seed)
    network = build_network(Architecture("mlp", 4, 2, "classification", hidden_sizes=[8]))
    x, y = blobs()
    result = fit(network, x_train=x[:160], y_train=y[:160], x_val=x[160:],
                 y_val=y[160:].numpy(), objective=Objective("classification", "accuracy"),
                 hp=hp, on_epoch=reports.append if reports is not None else None)
    return network, result


def test_the_same_seed_trains_to_identical_weights_on_the_cpu() -> None:
    hp = HyperParameters(epochs=5, batch_size=16, seed=4, early_stopping_patience=0)
    first, _ = train(hp)
    second, _ = train(hp)
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value), key


def test_a_different_seed_trains_differently() -> None:
    first, _ = train(HyperParameters(epochs=2, seed=1))
    second, _ = train(HyperParameters(epochs=2, seed=2))
    assert not torch.equal(first.head.weight, second.head.weight)


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch() -> None:
    reports: list[EpochReport] = []
    # A large learning rate with SGD wanders, so the best epoch is an early one.
    hp = HyperParameters(epochs=40, batch_size=8, learning_rate=0.5, optimizer="sgd",
                         early_stopping_patience=3, seed=0)
    network, result = train(hp, reports)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3
    best = max(r.value for r in reports)
    assert result.best_value == best
    x, y = blobs()
    with torch.no_grad():
        accuracy = (network(x[160:]).argmax(1) == y[160:]).double().mean().item()
    assert abs(accuracy - best) < 1e-9


def test_each_epoch_is_reported_with_loss_metric_and_time() -> None:
    reports: list[EpochReport] = []
    train(HyperParameters(epochs=3, early_stopping_patience=0), reports)
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert all(r.train_loss > 0 and r.metric == "accuracy" for r in reports)
    assert reports[-1].elapsed_seconds >= reports[0].elapsed_seconds


def test_one_replica_draws_the_same_order_as_the_distributed_sampler() -> None:
    sampler = DistributedSampler(range(37), num_replicas=1, rank=0, shuffle=True, seed=9)
    for epoch in (1, 2, 5):
        drawn = epoch_order(sampler, epoch, torch.device("cpu")).tolist()
        sampler.set_epoch(epoch)
        assert drawn == list(sampler)
