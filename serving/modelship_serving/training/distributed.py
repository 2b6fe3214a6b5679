"""Joining a data-parallel group from the environment an indexed Job gives.

With ``workers > 1`` the operator runs an indexed Job: each pod's index is
``JOB_COMPLETION_INDEX`` (its rank), and the operator sets ``WORLD_SIZE``,
``MASTER_ADDR`` (pod 0's stable name) and ``MASTER_PORT``. ``RANK`` is honoured
too, so ``torchrun``-style launches work. The group is an ordinary
``torch.distributed`` one, over gloo on CPU and NCCL on GPUs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import DistributedSetupFailed, InvalidConfig
from .loop import Partition

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = timedelta(minutes=10)


def partition_from_env(workers: int, env: Mapping[str, str] | None = None) -> Partition:
    """Reads rank and world size; ``workers`` is what the spec asked for."""
    env = os.environ if env is None else env
    world = _int(env, "WORLD_SIZE", workers)
    rank = _int(env, "RANK", _int(env, "JOB_COMPLETION_INDEX", 0))
    if world < 1 or not 0 <= rank < world:
        raise InvalidConfig(f"rank {rank} does not fit WORLD_SIZE={world}")
    if world != workers:
        logger.warning("WORLD_SIZE=%d differs from fineTuning.workers=%d; the environment wins.",
                       world, workers)
    if world > 1:
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
        if missing:
            raise InvalidConfig(f"{world} workers need {' and '.join(missing)} in the "
                                "environment to find rank 0")
    return Partition(rank=rank, world_size=world)


def join(partition: Partition, device: torch.device) -> None:
    """Forms the process group (blocks until every rank has joined)."""
    if partition.world_size == 1:
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    logger.info("Joining a %s group as rank %d of %d via %s:%s.", backend, partition.rank,
                partition.world_size, os.environ.get("MASTER_ADDR"),
                os.environ.get("MASTER_PORT"))
    try:
        dist.init_process_group(backend, init_method="env://", rank=partition.rank,
                                world_size=partition.world_size, timeout=JOIN_TIMEOUT)
    except Exception as exc:  # RuntimeError, DistStoreError, timeouts
        raise DistributedSetupFailed(f"cannot join the training group as rank "
                                     f"{partition.rank}: {str(exc)[:600]}") from exc


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidConfig(f"environment variable {key} must be an integer, got {raw!r}") \
            from None
