"""A model's tensor signature, and the checks every request goes through.

The signature is built once from the completed config. Checking a request
against it happens on the event loop before anything is queued, so a wrong
name, datatype or shape is refused in microseconds with a message that says
which tensor is wrong and how.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc

from modelship_serving.protocol.datatypes import Datatype, from_config_name
from modelship_serving.protocol.errors import InvalidArgument
from modelship_serving.protocol.tensors import reshape
from modelship_serving.protocol.types import InferInput, RequestedOutput


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the model declares it (dims without the batch dim)."""

    name: str
    datatype: Datatype
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    optional: bool = False

    def wire_shape(self, batching: bool) -> list[int]:
        return ([-1] if batching else []) + list(self.dims)


@dataclass(frozen=True)
class Signature:
    """Inputs, outputs and batching of one model, checked against each request."""

    model: str
    max_batch_size: int
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 0

    @classmethod
    def from_config(cls, config: mc.ModelConfig) -> Signature:
        def spec(t: mc.ModelInput | mc.ModelOutput, optional: bool) -> TensorSpec:
            reshape = tuple(t.reshape.shape) if t.HasField("reshape") else None
            return TensorSpec(
                name=t.name,
                datatype=from_config_name(mc.DataType.Name(t.data_type)),
                dims=tuple(int(d) for d in t.dims),
                reshape=reshape,
                optional=optional,
            )

        if config.max_batch_size < 0:
            raise InvalidArgument(
                f"max_batch_size must be 0 (no batching) or more, got {config.max_batch_size}")
        return cls(
            model=config.name,
            max_batch_size=config.max_batch_size,
            inputs={t.name: spec(t, t.optional) for t in config.input},
            outputs={t.name: spec(t, False) for t in config.output},
        )

    def check_inputs(self, inputs: list[InferInput]) -> tuple[dict[str, np.ndarray], int]:
        """Arrays ready for the runtime and the request's batch size.

        Raises InvalidArgument naming the tensor that is missing, unexpected,
        of the wrong datatype or of the wrong shape.
        """
        feed: dict[str, np.ndarray] = {}
        batch = 1 if not self.batching else -1
        for tensor in inputs:
            spec = self.inputs.get(tensor.name)
            if spec is None:
                raise InvalidArgument(
                    f"unexpected input '{tensor.name}'; model '{self.model}' expects "
                    f"inputs {sorted(self.inputs)}"
                )
            if tensor.datatype != spec.datatype.name:
                raise InvalidArgument(
                    f"input '{tensor.name}': datatype {tensor.datatype} does not match "
                    f"the model's {spec.datatype.name}"
                )
            size = self._check_shape(spec, tensor.shape)
            if self.batching:
                if batch not in (-1, size):
                    raise InvalidArgument(
                        f"input '{tensor.name}': batch size {size} differs from the "
                        f"other inputs' {batch}"
                    )
                batch = size
            array = tensor.data
            if spec.reshape is not None:
                array = reshape(array, ((size,) if self.batching else ()) + spec.reshape,
                                name=tensor.name)
            feed[tensor.name] = array

        missing = [n for n, s in self.inputs.items() if n not in feed and not s.optional]
        if missing:
            raise InvalidArgument(
                f"model '{self.model}' needs inputs {missing} that the request lacks"
            )
        return feed, max(batch, 1)

    def _check_shape(self, spec: TensorSpec, shape: tuple[int, ...]) -> int:
        """The batch size of `shape` (1 without batching), or InvalidArgument."""
        expected = spec.wire_shape(self.batching)
        if len(shape) != len(expected):
            raise InvalidArgument(
                f"input '{spec.name}': shape {list(shape)} has {len(shape)} dimensions, "
                f"the model expects {len(expected)} ({expected})"
            )
        offset = 0
        batch = 1
        if self.batching:
            batch = shape[0]
            if not 1 <= batch <= self.max_batch_size:
                raise InvalidArgument(
                    f"input '{spec.name}': batch size {batch} is outside "
                    f"[1, {self.max_batch_size}] (max_batch_size of '{self.model}')"
                )
            offset = 1
        for i, (got, want) in enumerate(zip(shape[offset:], spec.dims), start=offset):
            if want != -1 and got != want:
                raise InvalidArgument(
                    f"input '{spec.name}': shape {list(shape)} does not match the model's "
                    f"{expected} (dimension {i} must be {want})"
                )
        return batch

    def check_outputs(self, requested: list[RequestedOutput] | None) -> None:
        """Raise InvalidArgument when a requested output is not one the model has."""
        if not requested:
            return
        seen: set[str] = set()
        for out in requested:
            if out.name not in self.outputs:
                raise InvalidArgument(
                    f"unexpected output '{out.name}'; model '{self.model}' has outputs "
                    f"{sorted(self.outputs)}"
                )
            if out.name in seen:
                raise InvalidArgument(f"output '{out.name}' is requested more than once")
            seen.add(out.name)
