"""A bare "hello world" on exactly the server's HTTP and gRPC stacks.

It answers every HTTP POST and every gRPC ModelInfer with a fixed, valid
inference response (the MLP's output for one row) after reading the request,
and does nothing else: no decoding, no model. The gap between it and the
real server at concurrency 1 is what the protocol handling and inference add.
"""

from __future__ import annotations

import argparse

import numpy as np
import uvloop
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from modelship_serving.protocol import InferOutput, InferResponse, http_codec
from modelship_serving.server.app import bind_socket, make_grpc_server, make_uvicorn

RESPONSE = InferResponse("mlp", "1", "", [
    InferOutput("probability", "FP32", (1, 1), np.array([[0.5]], np.float32), binary=True)])
BODY, JSON_LENGTH = http_codec.encode_response(RESPONSE)
HEADERS = [(b"content-type", b"application/octet-stream"),
           (http_codec.HEADER_LENGTH.encode(), str(JSON_LENGTH).encode()),
           (b"content-length", str(len(BODY)).encode())]
GRPC_RESPONSE = pb.ModelInferResponse(model_name="mlp", model_version="1")
GRPC_RESPONSE.outputs.add(name="probability", datatype="FP32", shape=[1, 1])
GRPC_RESPONSE.raw_output_contents.append(np.array([[0.5]], np.float32).tobytes())


async def hello_http(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


class HelloGrpc(service_pb2_grpc.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request, context):
        return GRPC_RESPONSE

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)


async def serve(http_port: int, grpc_port: int) -> None:
    grpc_server = make_grpc_server(64 * 1024 * 1024)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(HelloGrpc(), grpc_server)
    grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await grpc_server.start()
    http = make_uvicorn(hello_http, 1)
    await http.serve(sockets=[bind_socket("127.0.0.1", http_port)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.http_port, args.grpc_port))


if __name__ == "__main__":
    main()
