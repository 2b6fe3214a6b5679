"""The protocol's tensor datatypes and their numpy, ONNX and config names.

Three vocabularies name the same types: the wire ("FP32"), model_config.proto
("TYPE_FP32") and ONNX's TensorProto enum. One table maps them all, so a new
type is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelship_serving.protocol.errors import InvalidArgument


@dataclass(frozen=True)
class Datatype:
    """One wire datatype: its numpy dtype and byte size (0 for BYTES)."""

    name: str
    dtype: np.dtype
    itemsize: int
    onnx_type: int

    @property
    def config_name(self) -> str:
        """The name model_config.proto uses (TYPE_FP32, TYPE_STRING)."""
        return "TYPE_STRING" if self.name == "BYTES" else f"TYPE_{self.name}"


# ONNX TensorProto enum values; repeated here so the codecs import without onnx.
_ONNX = {
    "FP32": 1, "UINT8": 2, "INT8": 3, "UINT16": 4, "INT16": 5, "INT32": 6, "INT64": 7,
    "BYTES": 8, "BOOL": 9, "FP16": 10, "FP64": 11, "UINT32": 12, "UINT64": 13,
}

_NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

DATATYPES: dict[str, Datatype] = {
    name: Datatype(
        name=name,
        dtype=dtype,
        itemsize=0 if name == "BYTES" else dtype.itemsize,
        onnx_type=_ONNX[name],
    )
    for name, dtype in _NUMPY.items()
}

_BY_CONFIG = {dt.config_name: dt for dt in DATATYPES.values()}
_BY_ONNX = {dt.onnx_type: dt for dt in DATATYPES.values()}
_BY_KIND = {
    (dt.dtype.kind, dt.dtype.itemsize): dt for dt in DATATYPES.values() if dt.name != "BYTES"
}


def datatype(name: str) -> Datatype:
    """The wire datatype called `name`; InvalidArgument when there is none."""
    try:
        return DATATYPES[name]
    except (KeyError, TypeError):
        known = ", ".join(DATATYPES)
        raise InvalidArgument(f"unknown datatype {name!r}; expected one of {known}") from None


def from_config_name(name: str) -> Datatype:
    """The wire datatype for a model_config.proto name such as TYPE_FP32."""
    try:
        return _BY_CONFIG[name]
    except KeyError:
        raise InvalidArgument(f"datatype {name} is not supported by this server") from None


def from_onnx_type(onnx_type: int) -> Datatype:
    """The wire datatype for an ONNX TensorProto element type."""
    try:
        return _BY_ONNX[onnx_type]
    except KeyError:
        raise InvalidArgument(f"ONNX element type {onnx_type} is not supported") from None


def from_numpy(dtype: np.dtype) -> Datatype:
    """The wire datatype for a numpy dtype (object and str arrays are BYTES)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return DATATYPES["BYTES"]
    try:
        return _BY_KIND[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise InvalidArgument(f"numpy dtype {dtype} has no protocol datatype") from None
