"""Which model versions are loaded, and loading or unloading them at runtime.

A load reads the model's directory again, completes its config from the ONNX
graph, opens a session per served version in a worker thread (ONNX Runtime's
load blocks for as long as graph optimisation takes), then swaps the new set
in at once; versions that left the set drain before they close. A load that
fails leaves the model UNAVAILABLE with the reason, and whatever was serving
before keeps serving; nothing a model does takes the server down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2 as mc

from modelship_serving.protocol.errors import InvalidArgument, NotFound, Unavailable
from modelship_serving.repository.config import complete_config
from modelship_serving.repository.errors import ModelConfigError, RepositoryError
from modelship_serving.repository.layout import ModelRepository, select_versions
from modelship_serving.runtime.cpu import thread_count
from modelship_serving.runtime.direct import DirectRoute
from modelship_serving.runtime.placement import execution_mode, placement_for
from modelship_serving.runtime.scheduler import DynamicBatcher, Scheduler
from modelship_serving.runtime.session import (
    BatchObserver,
    SessionRunner,
    open_session,
    probe,
    session_options,
)
from modelship_serving.runtime.signature import Signature
from modelship_serving.runtime.stats import ModelStats

log = logging.getLogger(__name__)

READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
LOADING = "LOADING"
UNLOADING = "UNLOADING"

# Version numbers are int64s, as in Triton's protocol: at most 19 digits.
_VERSION_DIGITS = 19

# Below this batch-1 latency a model gets one intra-op thread per instance.
SMALL_MODEL_SECONDS = 0.0005


@dataclass
class LoadedVersion:
    """One served version: its config, signature, scheduler and statistics."""

    name: str
    version: int
    config: mc.ModelConfig
    signature: Signature
    scheduler: Scheduler
    stats: ModelStats
    path: Path
    stamp: tuple[int, int]
    direct: DirectRoute | None = None  # plain requests of a version that runs inline
    version_str: str = field(init=False)

    def __post_init__(self) -> None:
        self.version_str = str(self.version)


@dataclass
class ModelEntry:
    """What the repository index reports about one model."""

    name: str
    state: str = UNAVAILABLE
    reason: str = ""
    versions: dict[int, LoadedVersion] = field(default_factory=dict)
    config: mc.ModelConfig | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def default_version(self) -> LoadedVersion | None:
        return self.versions[max(self.versions)] if self.versions else None


class ModelManager:
    """Loads, serves and unloads the models of one repository."""

    def __init__(
        self,
        repository: ModelRepository,
        *,
        cpu_limit: float,
        observers: Sequence[BatchObserver],
        batch_histogram: Any = None,  # labels(model, version).observe(size)
    ) -> None:
        self.repository = repository
        self.cpu_limit = cpu_limit
        self.observers = observers
        self._batch_histogram = batch_histogram
        self._models: dict[str, ModelEntry] = {}

    # -- lookups (event loop, no awaits) -------------------------------------

    def get(self, name: str, version: str = "") -> LoadedVersion:
        """The version a request addresses; NotFound or Unavailable with why."""
        entry = self._models.get(name)
        if entry is None:
            raise NotFound(f"model '{name}' is not in the repository")
        if version:
            # Digits only: int() would also take "0_2", " 2" or "+2"; and no more
            # than an int64 holds (int() refuses thousands of digits with ValueError).
            if not (version.isascii() and version.isdigit()) or len(version) > _VERSION_DIGITS:
                raise InvalidArgument(
                    f"model '{name}': version {version!r:.40} is not a version number"
                )
            number = int(version)
            loaded = entry.versions.get(number)
            if loaded is None:
                served = sorted(entry.versions)
                raise NotFound(f"model '{name}' has no ready version {number}; "
                               f"ready versions: {served}")
            return loaded
        loaded = entry.default_version()
        if loaded is None:
            why = f": {entry.reason}" if entry.reason else ""
            raise Unavailable(f"model '{name}' is {entry.state.lower()}{why}")
        return loaded

    def find(self, name: str, version: str = "") -> LoadedVersion | None:
        """`get` for the common cases, without the reasons: None where `get` would
        raise, and also for any version string but "" and plain digits."""
        entry = self._models.get(name)
        if entry is None:
            return None
        if not version:
            return entry.default_version()
        if not (version.isascii() and version.isdigit()) or len(version) > _VERSION_DIGITS:
            return None
        return entry.versions.get(int(version))

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.get(name, version)
        except (NotFound, Unavailable, InvalidArgument):
            return False
        return True

    def entries(self) -> list[ModelEntry]:
        return [self._models[n] for n in sorted(self._models)]

    def loaded_versions(self) -> list[LoadedVersion]:
        return [v for e in self.entries() for _, v in sorted(e.versions.items())]

    def known_names(self) -> list[str]:
        """Models in the repository directory or loaded, sorted."""
        try:
            on_disk = set(self.repository.model_names())
        except OSError:
            on_disk = set()
        return sorted(on_disk | set(self._models))

    # -- load / unload ------------------------------------------------------

    async def load(self, name: str, *, config: mc.ModelConfig | None = None) -> ModelEntry:
        """(Re)load a model from the repository; safe to call repeatedly.

        Raises InvalidArgument with the reason when the model cannot be loaded;
        the model is then UNAVAILABLE and any versions serving before keep serving.
        """
        entry = self._models.setdefault(name, ModelEntry(name))
        async with entry.lock:
            started = time.monotonic()
            entry.state = LOADING
            try:
                new_config, versions = await asyncio.to_thread(self._open, name, config)
            except Exception as exc:  # whatever a model does, the server stays up
                why = str(exc) if isinstance(exc, RepositoryError) else (
                    f"{type(exc).__name__}: {exc}")
                entry.state = READY if entry.versions else UNAVAILABLE
                entry.reason = f"reload failed: {why}" if entry.versions else why
                log.warning("Model %s failed to load and is %s: %s", name,
                            "still serving its previous versions" if entry.versions
                            else "unavailable", why,
                            exc_info=not isinstance(exc, RepositoryError))
                raise InvalidArgument(f"failed to load '{name}': {why}") from exc

            old = entry.versions
            entry.versions = versions
            entry.config = new_config
            entry.state = READY
            entry.reason = ""
            retired = [v for n, v in old.items() if versions.get(n) is not v]
            log.info("Model %s is ready with versions %s (loaded in %.2fs).",
                     name, sorted(versions), time.monotonic() - started)
        for version in retired:
            await version.scheduler.close()
        return entry

    async def unload(self, name: str) -> None:
        """Stop serving a model after draining its in-flight requests (idempotent)."""
        entry = self._models.get(name)
        if entry is None:
            if name not in self.known_names():
                raise NotFound(f"model '{name}' is not in the repository")
            self._models[name] = ModelEntry(name, reason="unloaded")
            return
        async with entry.lock:
            entry.state = UNLOADING
            versions = list(entry.versions.values())
            entry.versions = {}
            for version in versions:
                await version.scheduler.close()
            entry.state = UNAVAILABLE
            entry.reason = "unloaded"
        log.info("Model %s is unloaded.", name)

    async def close(self) -> None:
        """Drain and close every loaded version (server shutdown)."""
        for entry in self.entries():
            for version in list(entry.versions.values()):
                await version.scheduler.close()

    def _open(self, name: str, override: mc.ModelConfig | None
              ) -> tuple[mc.ModelConfig, dict[int, LoadedVersion]]:
        """Read, complete and open a model's served versions (worker thread)."""
        source = self.repository.read(name, config=override)
        if not source.versions:
            raise RepositoryError(
                f"model '{name}' has no version directory holding "
                f"{source.config.default_model_filename or 'model.onnx'}"
            )
        wanted = select_versions(
            source.config.version_policy if source.config.HasField("version_policy")
            else _latest_one(), list(source.versions),
        )
        config = complete_config(source.config, name=name,
                                 onnx_path=source.versions[max(wanted)])
        # Reuse versions already serving the same file and config.
        current = self._models.get(name)
        opened: dict[int, LoadedVersion] = {}
        for number in wanted:
            path = source.versions[number]
            kept = current.versions.get(number) if current else None
            if kept is not None and kept.config == config and kept.stamp == _stamp(path):
                opened[number] = kept
                continue
            opened[number] = self._open_version(name, number, config, path)
        return config, opened

    def _open_version(self, name: str, number: int, config: mc.ModelConfig,
                      path: Path) -> LoadedVersion:
        instances = sum(max(g.count, 1) for g in config.instance_group) or 1
        options = session_options(config, thread_count(self.cpu_limit, instances))
        threads = options.intra_op_num_threads
        session = open_session(path, options)
        try:
            signature = Signature.from_config(config)
        except InvalidArgument as exc:
            raise ModelConfigError(exc.message) from None
        _check_session(session, signature)
        mode = execution_mode({k: v.string_value for k, v in config.parameters.items()}, name)

        # A small model runs faster on one thread: waking a pool costs more than
        # its whole run. An explicit intra_op_thread_count in config.pbtxt wins.
        measured = probe(session, signature)
        if (threads > 1 and measured is not None and measured.seconds < SMALL_MODEL_SECONDS
                and "intra_op_thread_count" not in config.parameters):
            threads = 1
            session = open_session(path, session_options(config, threads))
            measured = probe(session, signature) or measured
        runner = SessionRunner(model=name, version=str(number), session=session,
                               signature=signature, observers=self.observers)
        stats = ModelStats()
        batch_sizes = None
        if self._batch_histogram is not None:
            batch_sizes = self._batch_histogram.labels(name, str(number))
        scheduler: Scheduler
        direct = None
        if config.HasField("dynamic_batching") and config.max_batch_size > 0:
            batching = config.dynamic_batching
            scheduler = DynamicBatcher(
                runner, stats, instances=instances,
                max_batch_size=config.max_batch_size,
                preferred_batch_sizes=list(batching.preferred_batch_size),
                max_queue_delay_us=batching.max_queue_delay_microseconds,
                batch_histogram=batch_sizes,
            )
        else:
            placement = placement_for(signature, measured, mode=mode, model=name,
                                      version=str(number))
            scheduler = Scheduler(runner, stats, instances=instances,
                                  batch_histogram=batch_sizes, placement=placement)
            if placement is not None:
                direct = DirectRoute.for_signature(signature)
        log.info("Opened model %s version %s from %s with %d instance(s) of %d thread(s)%s.",
                 name, number, path, instances, threads,
                 "" if measured is None else f", {measured.seconds * 1e6:.0f} µs a batch-1 run")
        return LoadedVersion(name, number, config, signature, scheduler, stats, path,
                             _stamp(path), direct)


def _latest_one() -> mc.ModelVersionPolicy:
    policy = mc.ModelVersionPolicy()
    policy.latest.num_versions = 1
    return policy


def _stamp(path: Path) -> tuple[int, int]:
    """What tells a changed model file from the one already loaded."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def _check_session(session: object, signature: Signature) -> None:
    """Refuse a version whose graph lacks a tensor the (completed) config declares."""
    graph_inputs = {i.name for i in session.get_inputs()}  # type: ignore[attr-defined]
    graph_outputs = {o.name for o in session.get_outputs()}  # type: ignore[attr-defined]
    missing = sorted((set(signature.inputs) - graph_inputs)
                     | (set(signature.outputs) - graph_outputs))
    if missing:
        raise ModelConfigError(f"the ONNX graph has no tensors named {missing}")
