"""Transport-neutral inference requests and responses.

Both transports decode into these and encode from them, so the core (and the
ensemble router) never sees JSON or protobuf. Tensors are already numpy arrays
shaped as the client declared; checking them against a model is the core's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (name, datatype, shape, raw bytes) of one input sent as raw data, undecoded.
RawTensor = tuple[str, str, Sequence[int], "bytes | memoryview"]


@dataclass(slots=True)
class InferInput:
    """One decoded input tensor as the client sent it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for; `binary` only matters over HTTP."""

    name: str
    binary: bool = False


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request: what to run and on which tensors."""

    model_name: str
    model_version: str
    id: str
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None
    binary_outputs_by_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferOutput:
    """One output tensor of a response, with the wire datatype it goes out as."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    binary: bool = False


@dataclass(slots=True)
class InferResponse:
    """The outcome of one request: the model and version that ran, and outputs."""

    model_name: str
    model_version: str
    id: str
    outputs: list[InferOutput]
    parameters: dict[str, Any] = field(default_factory=dict)
