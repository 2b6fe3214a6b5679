"""The direct route: a plain request to a model that runs on the event loop.

Most requests to a small model are plain: every input sent once, as raw bytes
of exactly the datatype the model declares, in a shape that fits, with no
parameters. The general path handles everything else too, and pays for it on
every request: a neutral request object, a checking pass, queue bookkeeping.
For a version small enough to run on the event loop (see `placement`) that
is most of the request's cost, the more so on a core that slept since the
last request, where every extra object and call is a cache miss.

`DirectRoute.feed` builds the model's feed straight from the raw tensors, or
returns None for anything that is not plain. It never refuses a request and
never accepts one the general path would refuse: a None sends the request
down the general path, which gives the error when there is one. The tests
hold the two paths to the same answers on generated requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from modelship_serving.protocol.tensors import MAX_DIMENSION, MAX_RANK, raw_bools_valid
from modelship_serving.protocol.types import RawTensor
from modelship_serving.runtime.signature import Signature


@dataclass(frozen=True, slots=True)
class _Input:
    datatype: str
    dtype: np.dtype
    itemsize: int
    dims: tuple[int, ...]  # the wire shape; -1 is any size, the batch dimension is first
    reshape: tuple[int, ...] | None  # the model's reshape (without the batch dimension)


class DirectRoute:
    """Feeds one inline version from plain raw tensors (see the module's doc)."""

    __slots__ = ("_inputs", "_batching", "_max_batch")

    def __init__(self, signature: Signature) -> None:
        self._batching = signature.batching
        self._max_batch = signature.max_batch_size
        self._inputs = {
            name: _Input(spec.datatype.name, spec.datatype.dtype, spec.datatype.itemsize,
                         tuple(spec.wire_shape(signature.batching)), spec.reshape)
            for name, spec in signature.inputs.items()
        }

    @classmethod
    def for_signature(cls, signature: Signature) -> DirectRoute | None:
        """A route when every input is a fixed-size datatype of a rank the protocol allows."""
        specs = signature.inputs.values()
        if not specs or any(s.datatype.itemsize <= 0
                            or len(s.wire_shape(signature.batching)) > MAX_RANK
                            or any(d > MAX_DIMENSION for d in s.dims) for s in specs):
            return None
        return cls(signature)

    def feed(self, tensors: Iterable[RawTensor]
             ) -> tuple[dict[str, np.ndarray], int, int] | None:
        """(feed, batch size, input elements) of a plain request, else None."""
        feed: dict[str, np.ndarray] = {}
        batch = -1
        elements = 0
        sent = 0
        for name, datatype, shape, raw in tensors:
            sent += 1
            spec = self._inputs.get(name)
            if spec is None or datatype != spec.datatype:
                return None
            dims = spec.dims
            if len(shape) != len(dims):
                return None
            count = 1
            for got, want in zip(shape, dims):
                if type(got) is not int or got < 0:
                    return None
                if want == -1:
                    if got > MAX_DIMENSION:
                        return None
                elif got != want:
                    return None
                count *= got
            if len(raw) != count * spec.itemsize:
                return None
            if spec.datatype == "BOOL" and not raw_bools_valid(raw):
                return None
            if self._batching:
                size = shape[0]
                if size < 1 or size > self._max_batch or (batch != -1 and size != batch):
                    return None
                batch = size
            target = tuple(shape) if spec.reshape is None else (
                ((batch,) if self._batching else ()) + spec.reshape)
            if spec.reshape is not None and math.prod(target) != count:
                return None
            feed[name] = np.ndarray(target, spec.dtype, raw)  # a view of raw, not a copy
            elements += count
        if sent != len(self._inputs) or len(feed) != sent:
            return None  # an input missing (optional ones included) or sent twice
        return feed, max(batch, 1), elements
