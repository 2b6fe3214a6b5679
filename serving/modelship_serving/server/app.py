"""Running the core behind HTTP, gRPC and metrics listeners on one event loop.

Listeners open before models load, so liveness answers while a large model is
still being optimised and readiness says when it is done. Shutdown runs in
the order Kubernetes needs: report not-ready, stop accepting, let every
request already received finish, then close the models.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import grpc
import uvicorn

from modelship_serving.server import grpc_service
from modelship_serving.server.backend import Backend
from modelship_serving.server.http_app import HttpApp
from modelship_serving.server.metrics import MetricsApp

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass
class Listeners:
    """Where the server listens; port 0 picks a free port (tests)."""

    host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int | None = 8002
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    request_body_timeout_seconds: float = 30.0
    shutdown_grace_seconds: float = 30.0
    drain_delay_seconds: float = 0.0
    bound: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Listeners:
        """The listeners the flags of :func:`add_listener_arguments` describe."""
        return cls(
            host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
            metrics_port=None if args.metrics_port < 0 else args.metrics_port,
            max_request_bytes=args.max_request_bytes,
            request_body_timeout_seconds=args.request_body_timeout_seconds,
            shutdown_grace_seconds=args.shutdown_grace_seconds,
            drain_delay_seconds=args.drain_delay_seconds,
        )


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def add_listener_arguments(p: argparse.ArgumentParser) -> None:
    """The flags the server and the router share: addresses, limits, logs, shutdown."""
    p.add_argument("--host", default=os.environ.get("MODELSHIP_BIND_ADDRESS", "0.0.0.0"))
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002,
                   help="port of /metrics (-1 turns it off)")
    p.add_argument("--max-request-bytes", type=_positive_int, default=DEFAULT_MAX_REQUEST_BYTES)
    p.add_argument("--request-body-timeout-seconds", type=_positive_float, default=30.0,
                   help="answer 408 when an announced HTTP request body stops arriving")
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    p.add_argument("--log-level", default=os.environ.get("MODELSHIP_LOG_LEVEL", "INFO"))
    p.add_argument("--shutdown-grace-seconds", type=float, default=30.0,
                   help="how long in-flight requests may take to finish on SIGTERM")
    p.add_argument("--drain-delay-seconds", type=float, default=0.0,
                   help="pause between turning readiness off and closing the listeners")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: shutdown is ours to order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound before uvicorn starts, so port 0 works and errors are early."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def make_uvicorn(app: object, grace: float) -> uvicorn.Server:
    """The uvicorn server every Modelship HTTP listener runs on (httptools, no lifespan)."""
    config = uvicorn.Config(
        app, loop="none", http="httptools", lifespan="off", access_log=False,
        log_config=None, server_header=False, date_header=False,
        timeout_keep_alive=75, timeout_graceful_shutdown=int(grace) or None,
    )
    return _Uvicorn(config)


def make_grpc_server(max_request_bytes: int) -> grpc.aio.Server:
    """The grpc.aio server every Modelship gRPC listener runs on."""
    return grpc.aio.server(options=[
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.max_send_message_length", -1),
    ])


class ServingProcess:
    """Owns the listeners of one backend (model server or router) and their orderly shutdown."""

    def __init__(self, core: Backend, listeners: Listeners) -> None:
        self.core = core
        self.listeners = listeners
        self._http: uvicorn.Server | None = None
        self._metrics: uvicorn.Server | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._metrics_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open every listener, then load the models (readiness follows)."""
        opts = self.listeners
        http_sock = bind_socket(opts.host, opts.http_port)
        opts.bound["http"] = http_sock.getsockname()[1]
        self._http = make_uvicorn(
            HttpApp(self.core, max_request_bytes=opts.max_request_bytes,
                    body_timeout_seconds=opts.request_body_timeout_seconds),
            opts.shutdown_grace_seconds)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[http_sock]))

        if opts.metrics_port is not None:
            metrics_sock = bind_socket(opts.host, opts.metrics_port)
            opts.bound["metrics"] = metrics_sock.getsockname()[1]
            self._metrics = make_uvicorn(MetricsApp(self.core), 1)
            self._metrics_task = asyncio.create_task(
                self._metrics.serve(sockets=[metrics_sock]))

        self._grpc = make_grpc_server(opts.max_request_bytes)
        grpc_service.register(self._grpc, self.core)
        address = f"[{opts.host}]" if ":" in opts.host else opts.host
        try:
            opts.bound["grpc"] = self._grpc.add_insecure_port(f"{address}:{opts.grpc_port}")
        except RuntimeError as exc:  # grpc's way of saying the address is taken
            raise OSError(f"cannot listen for gRPC on {address}:{opts.grpc_port}: {exc}") from None
        await self._grpc.start()
        log.info("Listening: HTTP on %s:%d, gRPC on %s:%d, metrics on %s:%s.", opts.host,
                 opts.bound["http"], opts.host, opts.bound["grpc"], opts.host,
                 opts.bound.get("metrics", "(off)"))
        await self.core.start()

    async def shutdown(self) -> None:
        """Not-ready first, then stop accepting and drain in-flight requests."""
        opts = self.listeners
        self.core.begin_drain()
        log.info("Shutting down: readiness is off; draining in-flight requests.")
        if opts.drain_delay_seconds > 0:
            await asyncio.sleep(opts.drain_delay_seconds)
        waits: list[asyncio.Future[object]] = []
        if self._http is not None:
            self._http.should_exit = True
            waits.append(self._http_task)  # type: ignore[arg-type]
        if self._grpc is not None:
            waits.append(asyncio.ensure_future(self._grpc.stop(opts.shutdown_grace_seconds)))
        await asyncio.gather(*waits, return_exceptions=True)

        # Metrics go last, so a scrape during the drain still sees it.
        if self._metrics is not None:
            self._metrics.should_exit = True
            await asyncio.gather(self._metrics_task, return_exceptions=True)
        await self.core.close()
        log.info("Shutdown complete.")


async def serve_until_signalled(process: ServingProcess) -> int:
    """Start `process`, wait for SIGTERM or SIGINT, then shut down in order; returns 0.

    A second signal exits at once, without draining.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("Second signal %s: exiting without draining.", signal.Signals(signum).name)
            os._exit(1)
        log.info("Received %s.", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    await process.start()
    await stop.wait()
    await process.shutdown()
    return 0


def run_event_loop(main: Callable[[], Awaitable[int]]) -> int:
    """Run `main` on uvloop (asyncio without it); a listener that cannot bind exits 1."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio still works
        return asyncio.run(main())  # type: ignore[arg-type]
    try:
        return uvloop.run(main())  # type: ignore[arg-type]
    except OSError as exc:
        log.error("Cannot start: %s", exc)
        return 1
