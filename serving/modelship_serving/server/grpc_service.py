"""The gRPC adapter: Triton's `inference.GRPCInferenceService` over the core.

The servicer subclasses the base class tritonclient ships and is registered
with tritonclient's own add-function, so the method table is Triton's. One
change is made to that table on the way in: request deserializers that never
raise. A body that is not a valid protobuf then reaches the servicer as a
`Malformed` marker and is answered INVALID_ARGUMENT, where grpc's default
would answer INTERNAL. And ModelInfer's answers may be bytes already
serialised (`grpc_codec.serialize_response`), which go out as they are.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from modelship_serving.protocol import grpc_codec
from modelship_serving.protocol.errors import InferenceError, InternalError, InvalidArgument
from modelship_serving.protocol.types import InferResponse
from modelship_serving.server.backend import Backend

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"


@dataclass(frozen=True)
class Malformed:
    """Stands in for a request message that failed to parse."""

    reason: str


def _safe(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, RuntimeWarning, ValueError) as exc:
            return Malformed(f"request is not a valid protobuf message: {exc}")
    return parse


def _as_is(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def write(message: Any) -> bytes:
        return message if type(message) is bytes else serialize(message)
    return write


class _Capture:
    """Receives tritonclient's method table so it can be adjusted before registering."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same table arrives through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers.update(handlers)


def register(server: grpc.aio.Server, core: Backend) -> InferenceService:
    """Add the inference service to `server` (tritonclient's table, safe parsing)."""
    servicer = InferenceService(core)
    capture = _Capture()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, capture)
    handlers = {
        name: handler._replace(request_deserializer=_safe(handler.request_deserializer))
        for name, handler in capture.handlers.items()
    }
    infer = handlers["ModelInfer"]
    handlers["ModelInfer"] = infer._replace(
        response_serializer=_as_is(infer.response_serializer))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return servicer


def _fail(context: grpc.aio.ServicerContext, exc: InferenceError) -> None:
    context.set_code(grpc.StatusCode[exc.grpc_code.name])
    context.set_details(exc.message)


def _answer_error(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    """Map an exception to the call's status (call it from the `except` block)."""
    if isinstance(exc, InferenceError):
        if not exc.is_client_error:
            log.warning("gRPC call failed: %s", exc.message)
        _fail(context, exc)
    else:
        log.exception("Unhandled error in a gRPC call.")
        _fail(context, InternalError(f"internal error: {exc}"))


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Every RPC decodes, calls the core once, and encodes; errors map to codes."""

    def __init__(self, core: Backend) -> None:
        self.core = core

    async def _call(self, request: Any, context: grpc.aio.ServicerContext,
                    empty: Any, action: Callable[[Any], Any]) -> Any:
        try:
            if isinstance(request, Malformed):
                raise InvalidArgument(request.reason)
            result = action(request)
            if hasattr(result, "__await__"):
                result = await result
            return result
        except Exception as exc:
            _answer_error(context, exc)
        return empty

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return await self._call(request, context, pb.ServerLiveResponse(),
                                lambda r: pb.ServerLiveResponse(live=self.core.live()))

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return await self._call(request, context, pb.ServerReadyResponse(),
                                lambda r: pb.ServerReadyResponse(ready=self.core.ready()))

    async def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        return await self._call(
            request, context, pb.ModelReadyResponse(),
            lambda r: pb.ModelReadyResponse(ready=self.core.model_ready(r.name, r.version)))

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return await self._call(request, context, pb.ServerMetadataResponse(),
                                lambda r: self.core.server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        return await self._call(request, context, pb.ModelMetadataResponse(),
                                lambda r: self.core.model_metadata(r.name, r.version))

    async def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        return await self._call(
            request, context, pb.ModelConfigResponse(),
            lambda r: pb.ModelConfigResponse(config=self.core.model_config(r.name, r.version)))

    async def ModelStatistics(self, request: Any, context: Any) -> pb.ModelStatisticsResponse:
        return await self._call(request, context, pb.ModelStatisticsResponse(),
                                lambda r: self.core.model_statistics(r.name, r.version))

    async def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        return await self._call(request, context, pb.RepositoryIndexResponse(),
                                lambda r: self.core.repository_index(ready_only=r.ready))

    async def RepositoryModelLoad(self, request: Any, context: Any
                                  ) -> pb.RepositoryModelLoadResponse:
        async def load(r: pb.RepositoryModelLoadRequest) -> pb.RepositoryModelLoadResponse:
            config = r.parameters["config"].string_param if "config" in r.parameters else None
            await self.core.load_model(r.model_name, config_json=config)
            return pb.RepositoryModelLoadResponse()
        return await self._call(request, context, pb.RepositoryModelLoadResponse(), load)

    async def RepositoryModelUnload(self, request: Any, context: Any
                                    ) -> pb.RepositoryModelUnloadResponse:
        async def unload(r: pb.RepositoryModelUnloadRequest) -> pb.RepositoryModelUnloadResponse:
            await self.core.unload_model(r.model_name)
            return pb.RepositoryModelUnloadResponse()
        return await self._call(request, context, pb.RepositoryModelUnloadResponse(), unload)

    async def ModelInfer(self, request: Any, context: Any) -> bytes | pb.ModelInferResponse:
        # The hot path: the same error mapping as _call, without its indirection;
        # the answer goes out already serialised (see `register`).
        try:
            if isinstance(request, Malformed):
                raise InvalidArgument(request.reason)
            return grpc_codec.serialize_response(await self._infer(request))
        except Exception as exc:
            _answer_error(context, exc)
        return pb.ModelInferResponse()

    async def _infer(self, request: pb.ModelInferRequest) -> InferResponse:
        plain = grpc_codec.plain_request(request)
        if plain is not None:
            response = self.core.infer_direct(
                request.model_name, request.model_version, request.id, plain[0], plain[1],
                binary_default=True, protocol="grpc")
            if response is not None:
                return response
        return await self.core.infer(grpc_codec.decode_request(request), protocol="grpc")

    async def ModelStreamInfer(self, request_iterator: AsyncIterator[Any], context: Any
                               ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        async for request in request_iterator:
            try:
                if isinstance(request, Malformed):
                    raise InvalidArgument(request.reason)
                response = grpc_codec.encode_response(await self._infer(request))
                yield pb.ModelStreamInferResponse(infer_response=response)
            except InferenceError as exc:
                yield pb.ModelStreamInferResponse(error_message=exc.message)
            except Exception as exc:
                log.exception("Unhandled error in a streamed inference.")
                yield pb.ModelStreamInferResponse(error_message=f"internal error: {exc}")
