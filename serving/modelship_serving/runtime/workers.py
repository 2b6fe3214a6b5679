"""Worker threads that run model executions and hand results back to the event loop.

One long-lived thread per model instance, fed through a SimpleQueue. For a
small model the hand-off is a large share of a request's time, and this path
(one queue put, one call_soon_threadsafe) costs a fraction of what an
executor's future chaining does.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WorkerThreads:
    """A fixed set of daemon threads running submitted calls in order of arrival."""

    def __init__(self, count: int, *, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, count))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., tuple[Any, Callable[[], None] | None]], *args: Any
               ) -> asyncio.Future[Any]:
        """Run fn(*args) in a worker thread; the future resolves on the calling loop.

        `fn` returns (result, then): the result goes to the future, and `then`
        (when not None) runs in the worker after it is handed over, so work the
        response does not need (observers) never delays it.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((loop, future, fn, args))
        return future

    def post(self, fn: Callable[[], None]) -> None:
        """Run fn() in a worker thread; nothing comes back (errors are logged)."""
        self._queue.put((None, None, fn, ()))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, future, fn, args = item
            if future is None:
                try:
                    fn()
                except Exception:
                    log.exception("A follow-up of a model execution failed.")
                continue
            result, then, error = None, None, None
            try:
                result, then = fn(*args)
            except BaseException as exc:  # delivered to the awaiting request
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                log.debug("The event loop closed before a result could be delivered.")
            if then is not None:
                try:
                    then()
                except Exception:
                    log.exception("A follow-up of a model execution failed.")

    def shutdown(self) -> None:
        """Let every thread finish its current call and exit (does not wait)."""
        for _ in self._threads:
            self._queue.put(None)
