"""The tensor codecs shared by both transports and the router."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from modelship_serving.protocol import DATATYPES, InvalidArgument, datatype
from modelship_serving.protocol.tensors import (
    decode_json,
    decode_raw,
    encode_json,
    encode_raw,
)


@pytest.mark.parametrize("name", [n for n in DATATYPES if n != "BYTES"])
def test_raw_round_trip_keeps_values_and_dtype(name):
    dt = datatype(name)
    array = (np.arange(12) % 2 == 0) if name == "BOOL" else np.arange(12).astype(dt.dtype)
    array = array.reshape(3, 4)
    back = decode_raw(dt, (3, 4), encode_raw(array, dt), name="x")
    assert back.dtype == dt.dtype
    np.testing.assert_array_equal(back, array)


def test_bytes_elements_are_length_prefixed_little_endian():
    dt = datatype("BYTES")
    array = np.array([b"ab", b"", "\u00e9"], dtype=object)
    raw = encode_raw(array, dt)
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) + \
        struct.pack("<I", 2) + "\u00e9".encode()
    assert list(decode_raw(dt, (3,), raw, name="x")) == [b"ab", b"", "\u00e9".encode()]


@pytest.mark.parametrize("raw, message", [
    (struct.pack("<I", 9) + b"abc", "declares 9 bytes but only 3 remain"),
    (struct.pack("<I", 1) + b"a" + b"zz", "2 bytes beyond the 1 elements"),
    (b"\x01\x00", "need at least 4 bytes"),
])
def test_malformed_bytes_tensors_say_what_is_wrong(raw, message):
    with pytest.raises(InvalidArgument, match=message):
        decode_raw(datatype("BYTES"), (1,), raw, name="words")


def test_raw_size_mismatch_names_the_input_and_the_sizes():
    with pytest.raises(InvalidArgument, match=r"input 'x': FP32 shape \[2, 3\] needs 24 bytes"
                                              r" of raw data, got 20"):
        decode_raw(datatype("FP32"), (2, 3), b"\0" * 20, name="x")


def test_json_accepts_flat_and_nested_data():
    dt = datatype("INT32")
    flat = decode_json(dt, (2, 2), [1, 2, 3, 4], name="x")
    nested = decode_json(dt, (2, 2), [[1, 2], [3, 4]], name="x")
    np.testing.assert_array_equal(flat, nested)
    assert flat.dtype == np.int32


@pytest.mark.parametrize("name, data, message", [
    ("INT8", [1, 300], r"out of range for INT8 \[-128, 127\]"),
    ("INT32", [1.5, 2], "integers, got numbers with a fraction"),
    ("FP32", [True, False], "needs JSON numbers, got booleans"),
    ("FP32", [1.5, True], "needs JSON numbers, got true/false among them"),
    ("INT64", [[3], [False]], "needs JSON integers, got true/false among them"),
    ("UINT8", [0, True], "needs JSON integers, got true/false among them"),
    ("BOOL", [1, 0], "needs JSON true/false, got integers"),
    ("FP32", ["a", "b"], "needs JSON numbers, got strings"),
    ("FP32", [[1], [2, 3]], "not a regular nested list"),
    ("BYTES", [1, {}], "BYTES data must be strings"),
])
def test_json_values_that_would_change_meaning_are_refused(name, data, message):
    with pytest.raises(InvalidArgument, match=message):
        decode_json(datatype(name), (2,), data, name="x")


def test_uint64_extremes_survive_json():
    dt = datatype("UINT64")
    values = [0, 2**64 - 1, 2**63 + 5]
    array = decode_json(dt, (3,), values, name="x")
    assert array.tolist() == values
    assert encode_json(array, dt, name="x") == values


def test_shapes_that_cannot_exist_are_refused_without_allocating():
    with pytest.raises(InvalidArgument, match="larger than"):
        decode_raw(datatype("FP32"), (2**50, 0), b"", name="x")
    with pytest.raises(InvalidArgument, match="non-negative"):
        decode_json(datatype("FP32"), (-1,), [], name="x")
    with pytest.raises(InvalidArgument, match="length prefixes"):
        decode_raw(datatype("BYTES"), (2**30,), b"\0" * 8, name="x")


def test_non_utf8_bytes_cannot_go_out_as_json():
    with pytest.raises(InvalidArgument, match="binary_data=true"):
        encode_json(np.array([b"\xff"], dtype=object), datatype("BYTES"), name="out")
