"""The HTTP/REST adapter: a raw ASGI application over the core.

No web framework sits between uvicorn and the protocol: for a small model the
request handling is the whole cost, so routing is a split path and a dict
lookup, bodies are read once into one buffer, and responses are two ASGI
messages. The body size limit is checked against Content-Length before any
byte is read, and again while reading when the client sends none.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from modelship_serving.protocol import http_codec
from modelship_serving.protocol.errors import (
    InferenceError,
    InvalidArgument,
    NotFound,
    RequestTimeout,
    RequestTooLarge,
)
from modelship_serving.repository.config import config_to_json
from modelship_serving.server.backend import Backend

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_HEADER_LENGTH = http_codec.HEADER_LENGTH.encode()
_HEADER_LENGTH_LOWER = _HEADER_LENGTH.lower()


class _Disconnected(Exception):
    """The client went away before its body arrived; nothing to answer."""


class _BodyDeadlines:
    """Requests waiting for their body, and a sweep that gives up on stalled ones.

    A client that announces more body than it sends (or sends it a byte a
    minute) would otherwise hold its request open for ever. A timer per
    request costs more than a small model's inference, so one sweeping task
    checks the waiting requests a few times a timeout, cancels those past
    their deadline, and stops when none has waited for a whole period.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.waiting: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def enter(self, task: asyncio.Task[object]) -> None:
        loop = asyncio.get_running_loop()
        self.waiting[task] = loop.time() + self.timeout
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="http-body-deadlines")

    async def _sweep(self) -> None:
        period = min(1.0, self.timeout / 4)
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(period)
                if not self.waiting:
                    return
                now = loop.time()
                for task, deadline in list(self.waiting.items()):
                    if deadline <= now and task not in self.expired:
                        self.expired.add(task)
                        task.cancel()
        finally:
            self._sweeper = None


class HttpApp:
    """ASGI callable serving the Open Inference Protocol's REST API."""

    def __init__(self, server: Backend, *, max_request_bytes: int,
                 body_timeout_seconds: float = 30.0) -> None:
        self.server = server
        self.max_request_bytes = max_request_bytes
        self._deadlines = _BodyDeadlines(body_timeout_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            path = scope["path"]
            if scope["method"] == "POST" and path.endswith("/infer"):
                # The hot path: /v2/models/<name>[/versions/<v>]/infer, routed directly.
                parts = path.strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["v2", "models"] and parts[2]:
                    status, body, headers = await self._infer(parts[2], "", scope, receive)
                elif (len(parts) == 6 and parts[:2] == ["v2", "models"] and parts[2]
                      and parts[3] == "versions"):
                    status, body, headers = await self._infer(parts[2], parts[4], scope,
                                                              receive)
                else:
                    status, body, headers = await self._route(scope, receive)
            else:
                status, body, headers = await self._route(scope, receive)
        except _Disconnected:
            return
        except InferenceError as exc:
            status, body, headers = exc.http_status, _error_body(exc.message), _JSON
            if isinstance(exc, RequestTimeout):
                # The client stopped sending mid-body: nothing more will be read on
                # this connection (a 413's may still be arriving, and closing under
                # it would reset the connection before the client reads the answer).
                headers = [*headers, (b"connection", b"close")]
        except Exception as exc:  # a bug: answer 500 and keep serving
            log.exception("Unhandled error on %s %s.", scope.get("method"), scope.get("path"))
            status, body, headers = 500, _error_body(f"internal error: {exc}"), _JSON
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive
                     ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method = scope["method"]
        parts = scope["path"].strip("/").split("/")
        if not parts or parts[0] != "v2":
            raise NotFound(f"no route for {scope['path']!r:.80}")
        rest = parts[1:]
        server = self.server

        if not rest:
            return _ok(http_codec.dumps(_server_metadata(server)))
        head = rest[0]
        if head == "health" and len(rest) == 2 and method == "GET":
            if rest[1] == "live":
                return (200 if server.live() else 503), b"", _JSON
            if rest[1] == "ready":
                return (200 if server.ready() else 503), b"", _JSON
        if head == "models":
            return await self._models(method, rest[1:], scope, receive)
        if head == "repository":
            return await self._repository(method, rest[1:], scope, receive)
        raise NotFound(f"no route for {method} {scope['path']!r:.80}")

    async def _models(self, method: str, rest: list[str], scope: Scope, receive: Receive
                      ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        server = self.server
        if rest == ["stats"] and method == "GET":
            return _ok(_to_json(server.model_statistics()))
        if not rest or not rest[0]:
            raise NotFound("a model name is required after /v2/models/")
        name, version, action = rest[0], "", rest[1:]
        if len(action) >= 2 and action[0] == "versions":
            version, action = action[1], action[2:]
        verb = action[0] if action else ""
        if len(action) > 1:
            raise NotFound(f"no route for {scope['path']!r:.80}")

        if verb == "infer" and method == "POST":
            return await self._infer(name, version, scope, receive)
        if method != "GET":
            raise NotFound(f"no route for {method} {scope['path']!r:.80}")
        if verb == "":
            return _ok(_to_json(server.model_metadata(name, version)))
        if verb == "ready":
            if server.model_ready(name, version):
                return 200, b"", _JSON
            # Triton answers 400 with no body; the reason helps whoever reads it.
            return 400, _error_body(server.model_unready_reason(name, version)), _JSON
        if verb == "config":
            return _ok(http_codec.dumps(server.config_json(name, version)))
        if verb == "stats":
            return _ok(_to_json(server.model_statistics(name, version)))
        raise NotFound(f"no route for {method} {scope['path']!r:.80}")

    async def _repository(self, method: str, rest: list[str], scope: Scope, receive: Receive
                          ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if method != "POST":
            raise NotFound(f"no route for {method} {scope['path']!r:.80}")
        body, _ = await self._read_body(scope, receive)
        params = http_codec.load_json_object(body, what="request body") if body.strip() else {}
        if rest == ["index"]:
            ready = params.get("ready", False)
            if not isinstance(ready, bool):
                raise InvalidArgument("'ready' must be a boolean")
            index = self.server.repository_index(ready_only=ready)
            return _ok(http_codec.dumps(_to_json(index, raw=True).get("models", [])))
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            name = rest[1]
            parameters = params.get("parameters") or {}
            if not isinstance(parameters, dict):
                raise InvalidArgument("'parameters' must be a JSON object")
            if rest[2] == "load":
                config = parameters.get("config")
                if config is not None and not isinstance(config, str):
                    raise InvalidArgument("parameter 'config' must be a JSON string")
                await self.server.load_model(name, config_json=config)
            else:
                await self.server.unload_model(name)
            return 200, b"", _JSON
        raise NotFound(f"no route for {method} {scope['path']!r:.80}")

    async def _infer(self, name: str, version: str, scope: Scope, receive: Receive
                     ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        body, raw_header_length = await self._read_body(scope, receive)
        header_length = None
        if raw_header_length is not None:
            header_length = http_codec.parse_header_length(raw_header_length.decode("latin-1"),
                                                           len(body))
        header = http_codec.read_header(body, header_length)
        plain = http_codec.plain_request(header, body, header_length)
        response = None
        if plain is not None:
            response = self.server.infer_direct(
                name, version, plain[3], plain[0], plain[1], binary_default=plain[2],
                protocol="http")
        if response is None:
            request = http_codec.decode_request(body, header_length, model_name=name,
                                                model_version=version, header=header)
            response = await self.server.infer(request, protocol="http")
        payload, json_length = http_codec.encode_response(response)
        if json_length is None:
            return 200, payload, _JSON
        return 200, payload, [(b"content-type", b"application/octet-stream"),
                              (_HEADER_LENGTH, str(json_length).encode())]

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bytes | None]:
        """The whole request body, refused before reading when it is too large, and
        the raw Inference-Header-Content-Length header (None when absent)."""
        limit = self.max_request_bytes
        encoding = b""
        header_length = None
        for key, value in scope["headers"]:
            if key == _HEADER_LENGTH_LOWER:
                if header_length is not None:
                    raise InvalidArgument(
                        f"{http_codec.HEADER_LENGTH} appears more than once; send it once")
                header_length = value
                continue
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidArgument("Content-Length is not an integer") from None
                if declared > limit:
                    raise RequestTooLarge(
                        f"request body of {declared} bytes exceeds the limit of {limit} bytes"
                    )
            elif key == b"content-encoding":
                encoding = value.strip().lower()

        chunks: list[bytes] = []
        size = 0
        task = asyncio.current_task()
        deadlines = self._deadlines
        deadlines.enter(task)  # type: ignore[arg-type]
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise RequestTooLarge(
                            f"request body exceeds the limit of {limit} bytes")
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if task not in deadlines.expired:
                raise
            deadlines.expired.discard(task)  # type: ignore[arg-type]
            task.uncancel()  # type: ignore[union-attr]
            raise RequestTimeout(
                f"the request body did not arrive within {deadlines.timeout:g} s "
                f"({size} bytes received)") from None
        finally:
            deadlines.waiting.pop(task, None)  # type: ignore[arg-type]
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if encoding and encoding != b"identity":
            body = _decompress(body, encoding, limit)
        return body, header_length


def _decompress(body: bytes, encoding: bytes, limit: int) -> bytes:
    """Undo gzip or deflate Content-Encoding without inflating past the limit."""
    if encoding == b"gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == b"deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise InvalidArgument(f"unsupported Content-Encoding {encoding.decode('latin-1')!r}")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidArgument(f"request body is not valid {encoding.decode()}: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise RequestTooLarge(f"decompressed request body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise InvalidArgument(f"request body is truncated {encoding.decode()} data")
    return out


def _ok(body: bytes | dict[str, Any] | list[Any]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    if not isinstance(body, bytes):
        body = http_codec.dumps(body)
    return 200, body, _JSON


def _to_json(message: Any, *, raw: bool = False) -> Any:
    value = config_to_json(message)
    return value if raw else http_codec.dumps(value)


def _server_metadata(server: Backend) -> dict[str, Any]:
    meta = server.server_metadata()
    return {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}


def _error_body(message: str) -> bytes:
    return http_codec.dumps({"error": message})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

