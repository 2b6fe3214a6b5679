"""The Open Inference Protocol as Triton speaks it: datatypes, tensor codecs, errors.

Importable without the server (the ensemble router decodes and encodes with it).
The gRPC codec lives in `grpc_codec` and is imported on demand, so an HTTP-only
user does not pay for protobuf.
"""

from modelship_serving.protocol.datatypes import DATATYPES, Datatype, datatype, from_numpy
from modelship_serving.protocol.errors import (
    InferenceError,
    InternalError,
    InvalidArgument,
    NotFound,
    RequestTooLarge,
    Unavailable,
    Unsupported,
)
from modelship_serving.protocol.tensors import (
    decode_json,
    decode_raw,
    encode_json,
    encode_raw,
)
from modelship_serving.protocol.types import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
)

__all__ = [
    "DATATYPES", "Datatype", "datatype", "from_numpy",
    "InferenceError", "InternalError", "InvalidArgument", "NotFound", "RequestTooLarge",
    "Unavailable", "Unsupported",
    "decode_json", "decode_raw", "encode_json", "encode_raw",
    "InferInput", "InferOutput", "InferRequest", "InferResponse", "RequestedOutput",
]
