"""Running one request through the members as the plan says, then combining.

Fan-out strategies (voting, weighted, parallel) call every member at once.
A serial pipeline starts each step as soon as the steps it reads from are
done, so independent branches of a pipeline also run concurrently. The first
member to fail cancels the calls still running: the request has failed, and
a member should not keep working for an answer nobody will read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from modelship_serving.router import combine
from modelship_serving.router.compat import EnsemblePlan, MemberCall
from modelship_serving.router.config import INPUT_PREFIX

# (call, arrays for its inputs) -> the member's outputs the call asks for.
CallMember = Callable[[MemberCall, dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]


async def first_failure_cancels(aws: Mapping[str, Awaitable[Any]]) -> dict[str, Any]:
    """Await every awaitable; on the first exception cancel the rest and raise it."""
    tasks = {key: asyncio.ensure_future(aw) for key, aw in aws.items()}
    try:
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return {key: task.result() for key, task in tasks.items()}
    finally:
        pending = [task for task in tasks.values() if not task.done()]
        for task in pending:
            task.cancel()
        # Wait for the cancellations to land, so no call outlives its request.
        await asyncio.gather(*pending, return_exceptions=True)


async def run(plan: EnsemblePlan, inputs: Mapping[str, np.ndarray], call: CallMember
              ) -> dict[str, np.ndarray]:
    """The ensemble's outputs for `inputs` (every output the plan defines)."""
    if plan.strategy == "serial":
        return await _serial(plan, inputs, call)

    results: dict[str, dict[str, np.ndarray]] = await first_failure_cancels({
        c.member: call(c, {n: inputs[s.removeprefix(INPUT_PREFIX)]
                           for n, s in c.inputs.items()
                           if s.removeprefix(INPUT_PREFIX) in inputs})
        for c in plan.calls
    })
    if plan.strategy == "voting":
        return _vote(plan, results)
    if plan.strategy == "weighted":
        return _weighted(plan, results)
    return _parallel(plan, results)


def _by_output(results: Mapping[str, Mapping[str, np.ndarray]], name: str
               ) -> dict[str, np.ndarray]:
    arrays = {member: out[name] for member, out in results.items()}
    combine.same_shapes(name, arrays)
    return arrays


def _vote(plan: EnsemblePlan, results: Mapping[str, Mapping[str, np.ndarray]]
          ) -> dict[str, np.ndarray]:
    vote = plan.vote
    assert vote is not None
    out: dict[str, np.ndarray] = {}
    averaged = None
    if vote.probabilities is not None:
        averaged = combine.average(list(_by_output(results, vote.probabilities).values()))
        out[vote.probabilities] = averaged
    if vote.label is not None:
        labels = list(_by_output(results, vote.label).values())
    else:
        assert vote.probabilities is not None
        labels = [combine.argmax_labels(out_[vote.probabilities]) for out_ in results.values()]
    out[vote.label_output.name] = combine.majority_vote(labels, averaged)
    return out


def _weighted(plan: EnsemblePlan, results: Mapping[str, Mapping[str, np.ndarray]]
              ) -> dict[str, np.ndarray]:
    weighted = plan.weighted
    assert weighted is not None
    out: dict[str, np.ndarray] = {}
    for name in weighted.averaged:
        arrays = _by_output(results, name)
        out[name] = combine.average([arrays[m] for m in weighted.weights],
                                    [weighted.weights[m] for m in weighted.weights])
    for name, probabilities in weighted.argmax.items():
        like = _by_output(results, name)
        first = next(iter(like.values()))
        out[name] = combine.argmax_labels(out[probabilities], like=first.shape,
                                          dtype=first.dtype)
    return out


def _parallel(plan: EnsemblePlan, results: Mapping[str, Mapping[str, np.ndarray]]
              ) -> dict[str, np.ndarray]:
    if plan.combine == "separate":
        return {f"{member}.{name}": array
                for member, out in results.items() for name, array in out.items()}
    out: dict[str, np.ndarray] = {}
    for meta in plan.outputs:
        arrays = [r[meta.name] for r in results.values() if meta.name in r]
        out[meta.name] = (arrays[0] if len(arrays) == 1 else
                          combine.concat(arrays, columns=meta.name in plan.columns))
    return out


async def _serial(plan: EnsemblePlan, inputs: Mapping[str, np.ndarray], call: CallMember
                  ) -> dict[str, np.ndarray]:
    steps: dict[str, asyncio.Future[dict[str, np.ndarray]]] = {}

    async def step(c: MemberCall) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {}
        for name, source in c.inputs.items():
            if source.startswith(INPUT_PREFIX):
                feed[name] = inputs[source.removeprefix(INPUT_PREFIX)]
            else:
                producer, output = source.split(".", 1)
                feed[name] = (await steps[producer])[output]
        return await call(c, feed)

    # Steps only read from earlier ones, so every future exists before it is awaited.
    for c in plan.calls:
        steps[c.member] = asyncio.ensure_future(step(c))
    results = await first_failure_cancels(steps)
    return {name: results[member][output] for name, (member, output) in plan.sources.items()}
