"""Compression codecs for record batch bodies.

The codec id lives in bits 0-2 of a batch's ``attributes`` (Kafka's numbering). The broker never
decompresses: a compressed batch stays compressed from producer to disk to consumer. Only
builders (producers), readers (consumers) and the log cleaner call into this module.

    0 none   1 gzip (stdlib)   2 snappy (not supported)   3 lz4 (needs the lz4 package)
    4 zstd (the zstandard package, a dependency of kbroker)
"""

from __future__ import annotations

import gzip
from enum import IntEnum
from typing import Callable

from kbroker.errors import CorruptRecordError, InvalidRecordError

__all__ = ["Codec", "compress", "decompress", "codec_from_name"]


class Codec(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


_NAMES = {"none": Codec.NONE, "gzip": Codec.GZIP, "snappy": Codec.SNAPPY, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}


def codec_from_name(name: str | None | Codec) -> Codec:
    """Map ``None``/``"none"``/``"gzip"``/``"lz4"``/``"zstd"`` (or a ``Codec``) to a ``Codec``."""
    if name is None:
        return Codec.NONE
    if isinstance(name, Codec):
        return name
    try:
        codec = _NAMES[str(name).lower()]
    except KeyError:
        raise InvalidRecordError(
            f"unknown compression {name!r}; use one of: none, gzip, lz4, zstd"
        ) from None
    _codec_functions(codec)  # fail early if the library is missing
    return codec


def _zstd() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3)
    dctx = zstandard.ZstdDecompressor()

    def decompress_zstd(data: bytes) -> bytes:
        # max_output_size covers frames written without a content size (streaming writers).
        return dctx.decompress(data, max_output_size=1 << 31)

    return cctx.compress, decompress_zstd


def _lz4() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    try:
        import lz4.frame as lz4frame
    except ImportError:
        raise InvalidRecordError("lz4 compression needs the 'lz4' package: pip install lz4") from None
    return lz4frame.compress, lz4frame.decompress


_CACHE: dict[Codec, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {}


def _codec_functions(codec: Codec) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    funcs = _CACHE.get(codec)
    if funcs is not None:
        return funcs
    if codec is Codec.NONE:
        funcs = (bytes, bytes)
    elif codec is Codec.GZIP:
        funcs = (lambda data: gzip.compress(data, compresslevel=6, mtime=0), gzip.decompress)
    elif codec is Codec.ZSTD:
        funcs = _zstd()
    elif codec is Codec.LZ4:
        funcs = _lz4()
    else:
        raise InvalidRecordError(f"compression codec {codec.name.lower()} is not supported; use gzip, lz4 or zstd")
    _CACHE[codec] = funcs
    return funcs


def compress(codec: Codec, data: bytes) -> bytes:
    if codec is Codec.NONE:
        return data
    return _codec_functions(codec)[0](data)


def decompress(codec: Codec, data: bytes | memoryview) -> bytes:
    if codec == Codec.NONE:
        return bytes(data)
    if codec not in Codec.__members__.values():
        raise CorruptRecordError(f"batch body uses an unknown compression codec id {codec}")
    try:
        return _codec_functions(Codec(codec))[1](bytes(data))
    except Exception as exc:  # zlib.error, OSError, EOFError, zstandard.ZstdError, lz4's RuntimeError
        raise CorruptRecordError(f"cannot decompress a {Codec(codec).name.lower()} batch body: {exc}") from exc
