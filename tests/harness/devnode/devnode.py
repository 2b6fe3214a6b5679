"""The development node as an object a test or a script holds: start, ask, stop.

The agent's asyncio loop runs in a thread of its own, so blocking test code
(kubectl, requests, pytest's own waiting) never stalls the node's probes,
proxies or status reports. Questions asked from the test's thread (where a
Service is reachable, where a claim's files live, which processes run) are
answered on the loop, so they see a consistent state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.harness.devnode.agent import DEFAULT_NODE_NAME, NodeAgent
from tests.harness.devnode.container import Backoff
from tests.harness.devnode.volumes import claim_folder

log = logging.getLogger(__name__)
T = TypeVar("T")


class DevNodeError(RuntimeError):
    """The development node could not start, or a question about it has no answer."""


class DevNode:
    """``DevNode(kubeconfig, root).start()`` ... ``.stop()``, or ``with DevNode(...) as node``."""

    def __init__(
        self,
        kubeconfig: Path | str,
        root: Path | str,
        *,
        node_name: str = DEFAULT_NODE_NAME,
        backoff: Backoff | None = None,
        stop_grace: float = 5.0,
        taints: list[dict[str, str]] | None = None,
        provision_volumes: bool = True,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.root = Path(root)
        self.agent = NodeAgent(self.kubeconfig, self.root, node_name=node_name,
                               backoff=backoff, stop_grace=stop_grace, taints=taints,
                               provision_volumes=provision_volumes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._started = concurrent.futures.Future[None]()
        self.used_addresses: set[str] = set()

    @property
    def node_name(self) -> str:
        return self.agent.node_name

    # -- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 60) -> DevNode:
        self._thread = threading.Thread(target=self._main, name="modelship-devnode", daemon=True)
        self._thread.start()
        try:
            self._started.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            self.stop()
            raise DevNodeError(
                f"the development node did not start within {timeout:.0f}s") from exc
        except BaseException:
            self._thread.join(timeout=30)
            raise
        return self

    def stop(self, timeout: float = 60) -> None:
        """Stop every pod process and proxy and deregister the node. Safe to repeat."""
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                raise DevNodeError(f"the development node did not stop within {timeout:.0f}s")
        self._thread = None

    def __enter__(self) -> DevNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self.agent.start()
        except BaseException as exc:
            await self.agent.stop()
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        await self._stopping.wait()
        await self.agent.stop()

    def _ask(self, question: Callable[[], T]) -> T:
        if self._loop is None or self._thread is None:
            raise DevNodeError("the development node is not running")

        async def ask() -> T:
            return question()

        return asyncio.run_coroutine_threadsafe(ask(), self._loop).result(timeout=10)

    # -- questions -----------------------------------------------------------------
    def service_address(self, namespace: str, name: str, *, timeout: float = 15) -> str:
        """The loopback address where Service ``namespace/name`` listens on its ports."""
        deadline = time.monotonic() + timeout
        while True:
            address = self._ask(lambda: self.agent.service_address(namespace, name))
            if address is not None:
                self.used_addresses.add(address)
                return address
            if time.monotonic() > deadline:
                raise DevNodeError(f"Service {namespace}/{name} has no address on the node")
            time.sleep(0.1)

    def pvc_path(self, namespace: str, claim: str) -> Path:
        """The host folder behind claim ``claim`` (created): put a model's files here."""
        return claim_folder(self.agent.pvc_root, namespace, claim)

    def log_path(self, namespace: str, pod: str, container: str) -> Path | None:
        """The log of the latest run of ``container`` in ``pod``, while the pod is on the node."""
        def find() -> Path | None:
            worker = self.agent.worker(namespace, pod)
            if worker is None:
                return None
            for runner in (*worker.init_runners, *worker.runners):
                if runner.name == container:
                    return runner.log_file()
            return None
        return self._ask(find)

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        def find() -> str | None:
            worker = self.agent.worker(namespace, pod)
            return worker.pod_ip if worker and worker.network_active else None
        return self._ask(find)

    def pod_pids(self, namespace: str, pod: str) -> list[int]:
        """Main processes of the containers of ``pod`` running now."""
        def find() -> list[int]:
            worker = self.agent.worker(namespace, pod)
            if worker is None:
                return []
            return [r.process.pid for r in (*worker.init_runners, *worker.runners)
                    if r.process is not None and r.process.running]
        return self._ask(find)

    def pids(self) -> list[int]:
        """Main processes of every container running now."""
        return self._ask(self.agent.pids)

    def addresses(self) -> list[str]:
        """Every pod and Service address the node holds now."""
        return self._ask(lambda: [*self.agent.pod_addresses.held,
                                  *self.agent.service_addresses.held])
