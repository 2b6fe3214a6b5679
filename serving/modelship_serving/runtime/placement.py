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
- every inline run's CPU time is measured (wall time would count the loop
  being preempted; a run the garbage collector interrupted is not counted,
  the pause is not the model's); runs over `DEMOTE_FACTOR` times the budget are strikes,
  runs within it take one away, and `STRIKES` of them, or a single run over
  `CEILING_NS`, move the version to its workers for good (logged). A first
  run may well be slow (onnxruntime allocates on it); one slow run is no
  reason to give up the inline path, a pattern is;
- `parameters { key: "execution_thread" value: { string_value: "worker" } }`
  in config.pbtxt keeps a model off the loop unconditionally.

Dynamic batching always uses the workers: batches are formed to be large.
Observers (drift detection) never run on the loop either.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Any

from modelship_serving.repository.errors import ModelConfigError
from modelship_serving.runtime.session import Probe
from modelship_serving.runtime.signature import Signature

log = logging.getLogger(__name__)

PARAMETER = "execution_thread"
MODES = ("auto", "worker")

# Less than one hand-off to a worker thread and back costs on the loop alone.
INLINE_BUDGET_NS = 50_000
# An inline run this many times over budget is a strike; STRIKES of them (net
# of the runs within budget since) send the version to its workers, and so
# does one run over CEILING_NS.
DEMOTE_FACTOR = 4
STRIKES = 3
CEILING_NS = 2_000_000


_collections = 0


def _count_collection(phase: str, info: dict[str, Any]) -> None:
    global _collections
    if phase == "start":
        _collections += 1


gc.callbacks.append(_count_collection)


def gc_runs() -> int:
    """How many garbage collections have started so far (to discard timings they spoil)."""
    return _collections


@dataclass(slots=True)
class Placement:
    """Decides, request by request, whether a version's run may stay on the loop."""

    model: str
    version: str
    probe_ns: int
    probe_elements: int
    budget_ns: int = INLINE_BUDGET_NS
    strikes: int = 0
    demoted: bool = False

    def inline(self, elements: int) -> bool:
        """Whether a request of `elements` input elements is predicted within budget."""
        return (not self.demoted
                and self.probe_ns * max(elements, 1) <= self.budget_ns * self.probe_elements)

    def ran(self, cpu_ns: int) -> None:
        """Record an inline run's CPU time; demote the version when it went far over
        budget."""
        if cpu_ns <= DEMOTE_FACTOR * self.budget_ns:
            if self.strikes:
                self.strikes -= 1
            return
        self.strikes += 1
        if (self.strikes >= STRIKES or cpu_ns > CEILING_NS) and not self.demoted:
            self.demoted = True
            log.warning(
                "Model %s version %s took %.0f µs of CPU on the event loop (budget %.0f µs); "
                "its executions run in worker threads from now on.",
                self.model, self.version, cpu_ns / 1000, self.budget_ns / 1000)


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
