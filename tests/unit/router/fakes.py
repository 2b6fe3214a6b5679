"""A scripted member transport: the router's own client boundary, faked for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

Answer = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


def unavailable(message: str = "model is loading") -> InferenceServerException:
    return InferenceServerException(message, status="StatusCode.UNAVAILABLE")


def refused(message: str = "input 'x': bad shape") -> InferenceServerException:
    return InferenceServerException(message, status="400")


class FakeTransport:
    """Answers from `answer`, after raising the scripted `failures` one call each.

    `hang` makes calls wait until cancelled (what a member that never answers does).
    """

    def __init__(self, address: str, *, metadata: dict[str, Any] | None = None,
                 answer: Answer | None = None, failures: Sequence[BaseException] = ()) -> None:
        self.address = address
        self.metadata_answer = metadata or {}
        self.answer = answer or (lambda feed: {})
        self.failures = list(failures)
        self.hang = False
        self.calls = 0
        self.started = asyncio.Event()
        self.cancelled = False
        self.closed = False

    async def _next(self) -> None:
        self.calls += 1
        self.started.set()
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        if self.failures:
            raise self.failures.pop(0)

    async def metadata(self, model: str, version: str, timeout: float) -> dict[str, Any]:
        await self._next()
        return self.metadata_answer

    async def infer(self, model: str, version: str, inputs: Mapping[str, np.ndarray],
                    outputs: Sequence[str], request_id: str, timeout: float
                    ) -> dict[str, np.ndarray]:
        await self._next()
        answer = self.answer(inputs)
        return {name: answer[name] for name in outputs}

    async def close(self) -> None:
        self.closed = True
