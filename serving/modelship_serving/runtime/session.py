"""One ONNX Runtime session and the batch execution that runs in worker threads.

`execute` is the only code that runs off the event loop: it stacks the inputs
of the requests in a batch, runs the session, splits the outputs back, and
hands the batch to every registered observer. Everything it needs is passed
in or immutable, so several worker threads may run it at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from tritonclient.grpc import model_config_pb2 as mc

from modelship_serving.protocol.errors import InternalError, InvalidArgument
from modelship_serving.repository.errors import ModelConfigError, ModelLoadError
from modelship_serving.runtime.signature import Signature

log = logging.getLogger(__name__)


class BatchObserver(Protocol):
    """Sees every executed batch (drift detection, anomaly counting).

    Called in the worker thread right after the session ran, with the whole
    batch's inputs and outputs. It must be quick and must not keep references
    to arrays it intends to mutate; exceptions are logged and swallowed.
    """

    def observe(
        self,
        model: str,
        version: str,
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
    ) -> None: ...


def _interested(observer: BatchObserver, model: str, version: str) -> bool:
    """Whether `observer` wants this version's batches (an observer may define
    `interested(model, version)` to skip versions it has nothing to do for)."""
    ask = getattr(observer, "interested", None)
    return True if ask is None else bool(ask(model, version))


@dataclass(slots=True)
class BatchTiming:
    """Nanoseconds spent in each stage of one batch, for Triton's statistics."""

    start_ns: int
    input_ns: int
    infer_ns: int
    output_ns: int


def session_options(config: mc.ModelConfig, threads: int) -> ort.SessionOptions:
    """Session options sized for the pod; config.pbtxt parameters may override."""
    params = {k: v.string_value for k, v in config.parameters.items()}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = _int_param(params, "intra_op_thread_count", threads)
    opts.inter_op_num_threads = _int_param(params, "inter_op_thread_count", 1)
    # Spinning threads burn the quota that request handling on the event loop
    # needs; a server shares its cores, so threads sleep unless asked otherwise.
    spinning = params.get("allow_spinning", "0").strip()
    if spinning not in ("0", "1"):
        raise ModelConfigError(f'parameter allow_spinning must be "0" or "1", '
                               f"got {spinning!r:.40}")
    opts.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    opts.log_severity_level = 3
    return opts


# More threads than any node has cores: a typo, and onnxruntime would try to make them.
MAX_THREADS = 256


def _int_param(params: dict[str, str], key: str, default: int) -> int:
    """A thread count from config.pbtxt parameters; ModelConfigError when it is none."""
    raw = params.get(key)
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_THREADS):
        raise ModelConfigError(
            f"parameter {key} must be a whole number of threads from 0 (onnxruntime's "
            f"default) to {MAX_THREADS}, got {raw!r:.40}")
    return int(text)


def open_session(path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    """An InferenceSession on CPU; ModelLoadError when ONNX Runtime refuses the file."""
    # Errors reach the server's log and the clients through exceptions; onnxruntime
    # would also print them to stderr outside the log format (its allocator and
    # the probe run do, whatever a run's own options say).
    ort.set_default_logger_severity(4)
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise ModelLoadError(f"ONNX Runtime cannot load {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Probe:
    """A batch-1 run on zeros timed at load: what placement decisions start from."""

    seconds: float
    elements: int  # input elements of the probe's feed


def probe(session: ort.InferenceSession, signature: Signature, runs: int = 5
          ) -> Probe | None:
    """Median time of a batch-1 run on zeros, or None when the graph refuses zeros.

    Doubles as a warm-up, so the first real request does not pay for lazy
    initialisation inside onnxruntime.
    """
    feed: dict[str, np.ndarray] = {}
    for spec in signature.inputs.values():
        shape = ([1] if signature.batching else []) + [max(d, 1) for d in spec.dims]
        if spec.reshape is not None:
            shape = ([1] if signature.batching else []) + list(spec.reshape)
        if spec.datatype.name == "BYTES":
            feed[spec.name] = np.full(shape, "", dtype=np.object_)
        else:
            feed[spec.name] = np.zeros(shape, dtype=spec.datatype.dtype)
    times = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
    except Exception:  # shapes or values the graph does not accept: no probe
        return None
    return Probe(sorted(times)[len(times) // 2], sum(a.size for a in feed.values()))


class SessionRunner:
    """Runs batches of requests through one session (thread-safe)."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        session: ort.InferenceSession,
        signature: Signature,
        observers: Sequence[BatchObserver],
    ) -> None:
        self.model = model
        self.version = version
        self.session = session
        self.signature = signature
        self.observers = observers
        self._output_names = [o.name for o in session.get_outputs()]
        # InferenceSession.run re-validates the feed's names (the signature has
        # already) before calling its C++ session; small models feel that cost,
        # so call the C++ session directly when this onnxruntime exposes it.
        inner = getattr(session, "_sess", None)
        self._run = getattr(inner, "run", None) or session.run
        # A run that fails on a client's input is answered with the reason; onnxruntime
        # would also print it to stderr, outside the log format, once per request.
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4  # fatal only
        self._string_inputs = {
            n for n, s in signature.inputs.items() if s.datatype.name == "BYTES"
        }
        self._string_outputs = {
            n for n, s in signature.outputs.items() if s.datatype.name == "BYTES"
        }

    def execute(
        self, feeds: Sequence[dict[str, np.ndarray]], sizes: Sequence[int]
    ) -> tuple[list[dict[str, np.ndarray]], BatchTiming, Callable[[], None] | None]:
        """Outputs of each request in the batch, the time spent per stage, and the
        call that shows the batch to the observers (None without observers), which
        the caller makes once the results are on their way.

        Raises InvalidArgument when ONNX Runtime rejects the inputs (a value a
        graph cannot take) and InternalError for anything else it raises.
        """
        start = time.perf_counter_ns()
        if len(feeds) == 1:
            # Copied only when strings are converted below (the request keeps its own).
            feed = dict(feeds[0]) if self._string_inputs else feeds[0]
        else:
            feed = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
        if self._string_inputs:
            for name in self._string_inputs & feed.keys():
                feed[name] = _to_text(feed[name], name=name)
        ready = time.perf_counter_ns()

        try:
            results = self._run(self._output_names, feed, self._run_options)
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise InvalidArgument(
                f"model '{self.model}' refused the inputs: {_ort_message(exc)}") from exc
        except Exception as exc:
            raise InternalError(
                f"model '{self.model}' failed to run: {_ort_message(exc)}") from exc
        ran = time.perf_counter_ns()

        outputs = dict(zip(self._output_names, results))
        if self._string_outputs:
            for name in self._string_outputs & outputs.keys():
                outputs[name] = _to_bytes(outputs[name])
        if len(feeds) == 1:
            split = [outputs]
        else:
            split = _split(outputs, sizes, model=self.model)
        done = time.perf_counter_ns()
        observe = None
        if self.observers:
            watching = [o for o in self.observers
                        if _interested(o, self.model, self.version)]
            if watching:
                observe = lambda: self._notify(watching, feed, outputs)  # noqa: E731
        return split, BatchTiming(start, ready - start, ran - ready, done - ran), observe

    def _notify(self, observers: Sequence[BatchObserver], feed: dict[str, np.ndarray],
                outputs: dict[str, np.ndarray]) -> None:
        for observer in observers:
            try:
                observer.observe(self.model, self.version, feed, outputs)
            except Exception:
                log.exception("Observer %r failed on model %s version %s; the request "
                              "is unaffected.", observer, self.model, self.version)


_ORT_SOURCE = re.compile(r"\s*/onnxruntime_src/\S+:\d+ (?:[^\n]*?\) )?")


def _ort_message(exc: Exception) -> str:
    """onnxruntime's error text without its source paths and C++ signatures."""
    return _ORT_SOURCE.sub(" ", str(exc)).strip()


def _split(outputs: dict[str, np.ndarray], sizes: Sequence[int], *, model: str
           ) -> list[dict[str, np.ndarray]]:
    """Cut each batched output back into one piece per request."""
    total = sum(sizes)
    bounds = np.cumsum(sizes)[:-1]
    pieces: list[dict[str, np.ndarray]] = [{} for _ in sizes]
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise InternalError(
                f"model '{model}' returned output '{name}' of shape {list(array.shape)} "
                f"for a batch of {total}; it cannot be split per request"
            )
        for piece, part in zip(pieces, np.split(array, bounds)):
            piece[name] = part
    return pieces


def _to_text(array: np.ndarray, *, name: str) -> np.ndarray:
    """BYTES elements as str, which is what ONNX Runtime's string tensors take."""
    out = np.empty(array.shape, dtype=np.object_)
    flat_in = array.reshape(-1)
    flat_out = out.reshape(-1)
    for i, item in enumerate(flat_in):
        if isinstance(item, (bytes, bytearray)):
            try:
                item = bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(
                    f"input '{name}': element {i} is not UTF-8; ONNX string tensors hold text"
                ) from None
        flat_out[i] = item
    return out


def _to_bytes(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=np.object_)
    flat_out = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        flat_out[i] = item.encode("utf-8") if isinstance(item, str) else item
    return out
