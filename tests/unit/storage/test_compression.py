"""Tests for kbroker.storage.compression: codec names, round trips, and damaged bodies."""

from __future__ import annotations

import importlib.util
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.errors import CorruptRecordError, InvalidRecordError
from kbroker.storage.compression import Codec, codec_from_name, compress, decompress

HAVE_LZ4 = importlib.util.find_spec("lz4") is not None
SUPPORTED = [Codec.NONE, Codec.GZIP, Codec.ZSTD] + ([Codec.LZ4] if HAVE_LZ4 else [])
COMPRESSING = [codec for codec in SUPPORTED if codec is not Codec.NONE]
NOISE = random.Random(20240601).randbytes(4096)  # incompressible, and the same on every run


def test_codec_ids_are_kafkas() -> None:
    assert {codec.name: int(codec) for codec in Codec} == {"NONE": 0, "GZIP": 1, "SNAPPY": 2, "LZ4": 3, "ZSTD": 4}


# --- codec_from_name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec"),
    [(None, Codec.NONE), ("none", Codec.NONE), ("gzip", Codec.GZIP), ("GZIP", Codec.GZIP), ("Zstd", Codec.ZSTD)],
)
def test_codec_from_name(name: str | None, codec: Codec) -> None:
    assert codec_from_name(name) is codec


@pytest.mark.parametrize("codec", list(Codec))
def test_codec_passes_through(codec: Codec) -> None:
    assert codec_from_name(codec) is codec


@pytest.mark.parametrize("name", ["brotli", "", "gzip ", "zstandard", "1"])
def test_unknown_name_is_rejected_with_the_choices(name: str) -> None:
    with pytest.raises(InvalidRecordError, match="unknown compression") as info:
        codec_from_name(name)
    assert repr(name) in str(info.value)
    assert "none, gzip, lz4, zstd" in str(info.value)


def test_snappy_is_known_but_not_supported() -> None:
    with pytest.raises(InvalidRecordError, match="snappy is not supported"):
        codec_from_name("snappy")


def test_lz4_without_the_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kbroker.storage import compression

    monkeypatch.setitem(sys.modules, "lz4", None)  # makes `import lz4.frame` fail as if not installed
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    monkeypatch.setattr(compression, "_CACHE", {})
    with pytest.raises(InvalidRecordError, match="pip install lz4"):
        codec_from_name("lz4")


def test_lz4_with_the_package() -> None:
    pytest.importorskip("lz4.frame")
    assert codec_from_name("lz4") is Codec.LZ4


# --- round trips ------------------------------------------------------------------------------

PAYLOADS = [b"", b"x", b"kbroker " * 1000, NOISE, bytes(range(256)) * 16]


@pytest.mark.parametrize("codec", SUPPORTED, ids=lambda c: c.name.lower())
@pytest.mark.parametrize("payload", PAYLOADS, ids=["empty", "one-byte", "repetitive", "random", "ramp"])
def test_compress_decompress_round_trip(codec: Codec, payload: bytes) -> None:
    packed = compress(codec, payload)
    assert decompress(codec, packed) == payload
    assert decompress(codec, memoryview(packed)) == payload
    assert decompress(int(codec), packed) == payload  # readers pass the raw attribute bits


def test_none_is_the_identity() -> None:
    assert compress(Codec.NONE, b"abc") == b"abc"
    assert decompress(Codec.NONE, memoryview(b"abc")) == b"abc"
    assert type(decompress(Codec.NONE, memoryview(b"abc"))) is bytes


@pytest.mark.parametrize("codec", COMPRESSING, ids=lambda c: c.name.lower())
def test_repetitive_data_shrinks(codec: Codec) -> None:
    payload = b"kbroker " * 1000
    assert len(compress(codec, payload)) < len(payload) // 10


@pytest.mark.parametrize("codec", SUPPORTED, ids=lambda c: c.name.lower())
@settings(deadline=None)
@given(payload=st.binary(max_size=2048))
def test_any_bytes_round_trip(codec: Codec, payload: bytes) -> None:
    assert decompress(codec, compress(codec, payload)) == payload


# --- damaged input ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", COMPRESSING, ids=lambda c: c.name.lower())
@pytest.mark.parametrize("garbage", [b"garbage", b"\x00" * 64, NOISE[:100]], ids=["text", "zeros", "random"])
def test_garbage_is_corrupt(codec: Codec, garbage: bytes) -> None:
    with pytest.raises(CorruptRecordError, match=f"cannot decompress a {codec.name.lower()} batch body"):
        decompress(codec, garbage)


@pytest.mark.parametrize("codec", COMPRESSING, ids=lambda c: c.name.lower())
def test_truncated_stream_is_corrupt(codec: Codec) -> None:
    packed = compress(codec, NOISE[:2000])
    with pytest.raises(CorruptRecordError):
        decompress(codec, packed[: len(packed) // 2])


def test_snappy_body_is_corrupt_not_a_crash() -> None:
    with pytest.raises(CorruptRecordError, match="snappy"):
        decompress(Codec.SNAPPY, b"anything")


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unknown_codec_id_is_corrupt(codec_id: int) -> None:
    # Codec bits 5-7 can arrive in a batch whose CRC is fine; that is bad data, not a crash.
    with pytest.raises(CorruptRecordError, match=f"unknown compression codec id {codec_id}"):
        decompress(codec_id, b"anything")  # type: ignore[arg-type]
