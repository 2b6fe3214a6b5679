"""Where a model's executions run: its worker threads, or the event loop itself.

Inference runs in worker threads so that a slow model never stalls request
handling. For a tiny model the hand-off is the expensive part: queueing the
call, waking the worker, and waking the loop again for the result cost more
CPU than the model (a 30-feature MLP runs in ~7 µs; the two wake-ups cost
~80 µs of CPU on a virtual machine whose cores sleep between requests). So a
version whose run is *predicted* to take less than `INLINE_BUDGET_NS` runs on
the loop, and everything else goes to its workers:

- the prediction scales the batch-1 time measured at load by the request's
  input elements, so a large request goes to the worker;
- models with BYTES inputs always go to the worker (their cost follows string
  lengths, which element counts do not see);
- the CPU time of every `SAMPLE_EVERY`-th inline run is measured (wall time
  would count the loop being preempted; a run the garbage collector
  interrupted is not counted, the pause is not the model's; reading a
  thread's CPU clock is a system call, too dear to make twice a request for a
  model that runs in microseconds). When the mean of the last `WINDOW` runs
  exceeds `DEMOTE_FACTOR` times the budget, or a single run exceeds
  `CEILING_NS`, the version moves to its workers for good (logged). A mean,
  not a count of slow runs: a core that slept since the last request, or a
  virtual machine whose host takes the core away, makes single runs several
  times slower now and then, and that is no reason to give up the inline
  path; a model that really is slower than its probe moves the mean;
- `parameters { key: "execution_thread" value: { string_value: "worker" } }`
  in config.pbtxt keeps a model off the loop unconditionally.

Dynamic batching always uses the workers: batches are formed to be large.
Observers (drift detection) never run on the loop either.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from modelship_serving.repository.errors import ModelConfigError
from modelship_serving.runtime.session import Probe
from modelship_serving.runtime.signature import Signature

log = logging.getLogger(__name__)

PARAMETER = "execution_thread"
MODES = ("auto", "worker")

# Less than one hand-off to a worker thread and back costs on the loop alone.
INLINE_BUDGET_NS = 50_000
# The mean CPU time of the last WINDOW inline runs may be at most DEMOTE_FACTOR
# times the budget; a single run over CEILING_NS is a model that must not run on
# the loop at all.
WINDOW = 64
DEMOTE_FACTOR = 4
SAMPLE_EVERY = 4
CEILING_NS = 10_000_000


_collections = 0


def _count_collection(phase: str, info: dict[str, Any]) -> None:
    global _collections
    if phase == "start":
        _collections += 1


gc.callbacks.append(_count_collection)


def gc_runs() -> int:
    """How many garbage collections have started so far (to discard timings they spoil)."""
    return _collections


class Placement:
    """Decides, request by request, whether a version's run may stay on the loop."""

    __slots__ = ("model", "version", "probe_ns", "probe_elements", "budget_ns", "demoted",
                 "_recent", "_next", "_total", "_runs")

    def __init__(self, model: str, version: str, probe_ns: int, probe_elements: int,
                 budget_ns: int = INLINE_BUDGET_NS) -> None:
        self.model = model
        self.version = version
        self.probe_ns = probe_ns
        self.probe_elements = probe_elements
        self.budget_ns = budget_ns
        self.demoted = False
        # The window starts full of runs exactly at budget.
        self._recent = [budget_ns] * WINDOW
        self._next = 0
        self._total = budget_ns * WINDOW
        self._runs = 0

    def inline(self, elements: int) -> bool:
        """Whether a request of `elements` input elements is predicted within budget."""
        return (not self.demoted
                and self.probe_ns * max(elements, 1) <= self.budget_ns * self.probe_elements)

    def sample(self) -> bool:
        """Whether to measure the run about to start (every SAMPLE_EVERY-th one)."""
        self._runs += 1
        return self._runs % SAMPLE_EVERY == 1

    def ran(self, cpu_ns: int) -> None:
        """Record an inline run's CPU time; demote the version when its recent runs
        went far over budget, or this one went over the ceiling."""
        index = self._next
        self._total += cpu_ns - self._recent[index]
        self._recent[index] = cpu_ns
        self._next = (index + 1) % WINDOW
        if self.demoted:
            return
        if self._total > DEMOTE_FACTOR * self.budget_ns * WINDOW or cpu_ns > CEILING_NS:
            self.demoted = True
            log.warning(
                "Model %s version %s took %.0f µs of CPU on the event loop (mean of the "
                "last %d runs: %.0f µs; budget %.0f µs); its executions run in worker "
                "threads from now on.", self.model, self.version, cpu_ns / 1000, WINDOW,
                self._total / WINDOW / 1000, self.budget_ns / 1000)

    def mean_ns(self) -> float:
        """The mean CPU time of the last WINDOW runs (the window starts at budget)."""
        return self._total / WINDOW


def execution_mode(parameters: dict[str, str], model: str) -> str:
    """The `execution_thread` parameter of a config ("auto" when absent)."""
    mode = parameters.get(PARAMETER, "auto").strip().lower()
    if mode not in MODES:
        raise ModelConfigError(
            f"model '{model}': parameter {PARAMETER} must be one of {list(MODES)}, "
            f"got {mode!r}")
    return mode


def placement_for(signature: Signature, probe: Probe | None, *, mode: str, model: str,
                  version: str) -> Placement | None:
    """A Placement when this version (not dynamically batched) may ever run on the
    loop, else None."""
    if mode != "auto" or probe is None or probe.elements <= 0:
        return None
    if any(spec.datatype.name == "BYTES" for spec in signature.inputs.values()):
        return None
    probe_ns = int(probe.seconds * 1e9)
    if probe_ns > INLINE_BUDGET_NS:
        return None
    return Placement(model, version, probe_ns, probe.elements)
