"""Tensor codecs shared by HTTP, gRPC and the ensemble router.

Raw (binary) tensors are little-endian, row-major element bytes; BYTES tensors
are each element's length as a 4-byte little-endian integer followed by its
bytes. JSON tensors are flat or nested lists in row-major order. Every decoder
checks sizes against the declared shape before it trusts either, and never
allocates from a size the client declared.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelship_serving.protocol.datatypes import Datatype, datatype
from modelship_serving.protocol.errors import InvalidArgument

_LENGTH = struct.Struct("<I")


# Larger dimensions cannot describe an array numpy could hold, even an empty one.
MAX_DIMENSION = 2**40
MAX_RANK = 32


def element_count(shape: Sequence[int], *, name: str) -> int:
    """The number of elements a shape holds; InvalidArgument when it is not a shape."""
    if len(shape) > MAX_RANK:
        raise InvalidArgument(f"input '{name}': shape has {len(shape)} dimensions, "
                              f"more than {MAX_RANK}")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise InvalidArgument(
                f"input '{name}': shape {list(shape)[:8]} must be a list of non-negative integers"
            )
        if dim > MAX_DIMENSION:
            raise InvalidArgument(f"input '{name}': dimension {dim} is larger than "
                                  f"{MAX_DIMENSION}")
        count *= dim
    return count


def parse_shape(raw: Any, *, name: str) -> tuple[int, ...]:
    """A shape from a JSON value, rejecting anything but a list of ints >= 0."""
    if not isinstance(raw, list):
        raise InvalidArgument(f"input '{name}': 'shape' must be a list, got {type(raw).__name__}")
    shape = tuple(raw)
    element_count(shape, name=name)
    return shape


def reshape(array: np.ndarray, shape: tuple[int, ...], *, name: str) -> np.ndarray:
    """`array` in `shape`; InvalidArgument for shapes numpy cannot represent."""
    try:
        return array.reshape(shape)
    except (ValueError, OverflowError):
        raise InvalidArgument(
            f"input '{name}': shape {list(shape)} cannot hold {array.size} elements"
        ) from None


# -- raw bytes -----------------------------------------------------------------


def decode_raw(dt: Datatype, shape: tuple[int, ...], buf: bytes | memoryview, *, name: str
               ) -> np.ndarray:
    """A numpy array from raw tensor bytes; InvalidArgument when sizes disagree."""
    count = element_count(shape, name=name)
    if dt.name == "BYTES":
        return reshape(decode_bytes_elements(buf, count, name=name), shape, name=name)
    expected = count * dt.itemsize
    if len(buf) != expected:
        raise InvalidArgument(
            f"input '{name}': {dt.name} shape {list(shape)} needs {expected} bytes "
            f"of raw data, got {len(buf)}"
        )
    if dt.name == "BOOL" and not raw_bools_valid(buf):
        raise InvalidArgument(f"input '{name}': BOOL raw data holds bytes other than 0 and 1")
    return reshape(np.frombuffer(buf, dtype=dt.dtype), shape, name=name)


def raw_bools_valid(buf: bytes | memoryview) -> bool:
    """Whether raw BOOL data holds only 0 and 1 bytes (numpy would keep any byte)."""
    return len(buf) == 0 or int(np.frombuffer(buf, dtype=np.uint8).max()) <= 1


def decode_bytes_elements(buf: bytes | memoryview, count: int, *, name: str) -> np.ndarray:
    """The elements of a length-prefixed BYTES buffer, exactly `count` of them."""
    view = memoryview(buf)
    if count * 4 > len(view):
        raise InvalidArgument(
            f"input '{name}': {count} BYTES elements need at least {count * 4} bytes of "
            f"length prefixes, got {len(view)} bytes"
        )
    out = np.empty(count, dtype=np.object_)
    offset = 0
    size = len(view)
    for i in range(count):
        if offset + 4 > size:
            raise InvalidArgument(
                f"input '{name}': BYTES data ends after {i} of {count} elements "
                f"(truncated length prefix at byte {offset})"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > size:
            raise InvalidArgument(
                f"input '{name}': BYTES element {i} declares {length} bytes but only "
                f"{size - offset} remain"
            )
        out[i] = bytes(view[offset:offset + length])
        offset += length
    if offset != size:
        raise InvalidArgument(
            f"input '{name}': BYTES data holds {size - offset} bytes beyond the "
            f"{count} elements its shape declares"
        )
    return out


def encode_raw(array: np.ndarray, dt: Datatype) -> bytes:
    """The raw wire bytes of an array of datatype `dt` (C order, whatever its layout)."""
    if dt.name == "BYTES":
        return encode_bytes_elements(array)
    # `is` first: comparing dtypes calls into numpy, and the usual case is the
    # very same (native) dtype object.
    if array.dtype is not dt.dtype and array.dtype != dt.dtype:
        array = array.astype(dt.dtype)
    return array.tobytes()


def encode_bytes_elements(array: np.ndarray) -> bytes:
    """Length-prefixed bytes of every element (str is UTF-8 encoded)."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        if isinstance(item, str):
            item = item.encode("utf-8")
        elif not isinstance(item, (bytes, bytearray)):
            item = str(item).encode("utf-8")
        parts.append(_LENGTH.pack(len(item)))
        parts.append(bytes(item))
    return b"".join(parts)


# -- JSON ----------------------------------------------------------------------

_KINDS = {"b": "BOOL", "i": "integer", "u": "integer", "f": "number"}


def decode_json(dt: Datatype, shape: tuple[int, ...], data: Any, *, name: str) -> np.ndarray:
    """A numpy array from a JSON `data` value (flat or nested, row-major)."""
    count = element_count(shape, name=name)
    if not isinstance(data, list):
        raise InvalidArgument(f"input '{name}': 'data' must be a list, got {type(data).__name__}")
    if dt.name == "BYTES":
        flat = _flatten_strings(data, name=name)
        if len(flat) != count:
            raise InvalidArgument(
                f"input '{name}': shape {list(shape)} needs {count} elements, got {len(flat)}"
            )
        out = np.empty(count, dtype=np.object_)
        out[:] = flat
        return reshape(out, shape, name=name)

    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise InvalidArgument(
            f"input '{name}': 'data' is not a regular nested list of {dt.name} values"
        ) from None
    if values.size != count:
        raise InvalidArgument(
            f"input '{name}': shape {list(shape)} needs {count} elements, got {values.size}"
        )
    if count == 0:
        return reshape(np.zeros(0, dtype=dt.dtype), shape, name=name)
    if dt.name != "BOOL" and values.dtype.kind != "b" and _has_bool(data):
        # numpy reads [1.5, true] as [1.5, 1.0]; a boolean is not a number.
        raise InvalidArgument(f"input '{name}': datatype {dt.name} needs JSON "
                              f"{_KINDS[dt.dtype.kind]}s, got true/false among them")
    _check_json_kind(dt, values, name=name)
    if dt.dtype.kind in "iu" and values.dtype.kind == "f":
        # Mixing int64 and uint64 magnitudes made numpy pick float; convert exactly.
        values = _exact_integers(dt, data, name=name)
    if dt.dtype.kind == "f" and values.dtype != dt.dtype:
        with np.errstate(over="ignore"):  # checked below, not printed to stderr
            narrowed = values.astype(dt.dtype)
        if not bool(np.isfinite(narrowed).all()):
            info = np.finfo(dt.dtype)
            raise InvalidArgument(
                f"input '{name}': a JSON number is out of range for {dt.name} "
                f"(largest magnitude {float(info.max):.6g})")
        return reshape(narrowed, shape, name=name)
    return reshape(values.astype(dt.dtype, copy=False), shape, name=name)


def _exact_integers(dt: Datatype, data: list[Any], *, name: str) -> np.ndarray:
    try:
        return np.array(data, dtype=dt.dtype)
    except (OverflowError, ValueError, TypeError):
        info = np.iinfo(dt.dtype)
        raise InvalidArgument(
            f"input '{name}': values out of range for {dt.name} [{info.min}, {info.max}]"
        ) from None


def _has_bool(data: list[Any]) -> bool:
    """Whether a (regular, nested) JSON list holds a boolean; C speed per level."""
    kinds = set(map(type, data))
    if bool in kinds:
        return True
    return list in kinds and any(_has_bool(item) for item in data)


def _check_json_kind(dt: Datatype, values: np.ndarray, *, name: str) -> None:
    """Refuse values that would silently change meaning when cast to `dt`."""
    kind = values.dtype.kind
    if dt.name == "BOOL":
        ok = kind == "b"
    elif dt.dtype.kind in "iu":
        if kind == "f":
            # Only integral values (big unsigned ones come out of numpy as floats).
            ok = bool(np.all(np.isfinite(values)) and np.all(np.floor(values) == values))
            if not ok:
                raise InvalidArgument(f"input '{name}': datatype {dt.name} needs JSON "
                                      f"integers, got numbers with a fraction")
            return
        ok = kind in "iu"
        if ok:
            info = np.iinfo(dt.dtype)
            ok = info.min <= int(values.min()) and int(values.max()) <= info.max
            if not ok:
                raise InvalidArgument(
                    f"input '{name}': values out of range for {dt.name} "
                    f"[{info.min}, {info.max}]"
                )
    else:
        ok = kind in "iuf"
        if ok and kind == "f" and not bool(np.all(np.isfinite(values))):
            raise InvalidArgument(
                f"input '{name}': a JSON number is out of range for {dt.name} "
                "(JSON has no infinities; send non-finite values as binary data)")
    if not ok:
        want = "true/false" if dt.name == "BOOL" else _KINDS[dt.dtype.kind] + "s"
        raise InvalidArgument(
            f"input '{name}': datatype {dt.name} needs JSON {want}, got "
            f"{_describe_kind(values)}"
        )


def _describe_kind(values: np.ndarray) -> str:
    kind = values.dtype.kind
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers",
            "U": "strings"}.get(kind, "mixed or non-numeric values")


def _flatten_strings(data: list[Any], *, name: str) -> list[bytes]:
    """Flatten nested lists of strings into UTF-8 bytes."""
    out: list[bytes] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if isinstance(item, str):
                out.append(item.encode("utf-8"))
            elif isinstance(item, bool) or not isinstance(item, (int, float)):
                raise InvalidArgument(
                    f"input '{name}': BYTES data must be strings, got {type(item).__name__}"
                )
            else:
                out.append(str(item).encode("utf-8"))
        else:
            stack.pop()
    return out


def encode_json(array: np.ndarray, dt: Datatype, *, name: str) -> list[Any]:
    """The flat JSON list of an output array (BYTES as UTF-8 strings); refuses
    what `check_json_output` refuses."""
    if dt.name == "BYTES":
        return _json_strings(array, name=name)
    check_json_output(array, dt, name=name)
    return array.reshape(-1).tolist()


def check_json_output(array: np.ndarray, dt: Datatype, *, name: str) -> None:
    """Refuse an output JSON cannot carry, with the way out (binary data).

    JSON has no NaN or infinities, and its strings are text: rather than
    written as something no JSON parser reads, or silently turned into null,
    such an output is an error the server can count as one before answering.
    """
    if dt.name == "BYTES":
        _json_strings(array, name=name)
    elif array.dtype.kind == "f" and not bool(np.isfinite(array).all()):
        raise InvalidArgument(
            f"output '{name}' holds NaN or infinite values, which JSON cannot "
            f"represent; ask for it with binary_data=true")


def _json_strings(array: np.ndarray, *, name: str) -> list[str]:
    out: list[str] = []
    for item in array.reshape(-1):
        if isinstance(item, (bytes, bytearray)):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(
                    f"output '{name}' holds bytes that are not UTF-8; ask for it with "
                    f"binary_data=true"
                ) from None
        out.append(str(item))
    return out


def as_datatype(name: Any, *, tensor: str) -> Datatype:
    """The datatype a client declared for a tensor, or an error naming the tensor."""
    if not isinstance(name, str):
        raise InvalidArgument(f"input '{tensor}': 'datatype' must be a string")
    try:
        return datatype(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"input '{tensor}': {exc.message}") from None
