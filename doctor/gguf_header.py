"""Reading a GGUF file's header: metadata and tensor infos, never the tensor data.

Works over any byte source (a local file, or HTTP Range requests for a Hub file), so a
20 GB model costs no more than its header (a few MB, mostly the tokenizer's vocabulary,
which is skipped rather than decoded). gguf's own ``GGUFReader`` memory-maps the whole
file and cannot read a remote one, hence this small reader; tests check it against files
written by the ``gguf`` package and its ``GGML_QUANT_SIZES`` table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from llmdoctor.errors import UserError

MAGIC = b"GGUF"
# ggml type id -> (name, elements per block, bytes per block): gguf-py's GGML_QUANT_SIZES
QUANT_SIZES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
# metadata value types: struct format, or None for strings and arrays
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
MAX_KEEP_ARRAY = 4096  # longer arrays (vocabularies) are skipped, their length kept


class GGUFError(UserError):
    """Not a GGUF file, or a damaged one."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple
    type_id: int
    offset: int

    @property
    def type_name(self) -> str:
        return QUANT_SIZES.get(self.type_id, (f"type{self.type_id}", 1, 0))[0]

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def n_bytes(self) -> int:
        """Exactly as gguf's ReaderTensor.n_bytes: elements x bytes per block / block size."""
        if self.type_id not in QUANT_SIZES:
            raise GGUFError(f"tensor {self.name} has unknown ggml type {self.type_id}")
        _, block, size = QUANT_SIZES[self.type_id]
        return self.n_elements * size // block


@dataclass
class GGUFHeader:
    version: int
    metadata: dict = field(default_factory=dict)  # long arrays become {"array_length": n}
    tensors: list = field(default_factory=list)
    header_bytes: int = 0  # how far the reader had to read

    def get(self, key: str, default=None):
        return self.metadata.get(key, default)


class _Cursor:
    """Sequential reads over ``fetch(offset, size) -> bytes``, buffered in growing chunks."""

    def __init__(self, fetch: Callable[[int, int], bytes], limit: int, chunk: int = 1 << 20) -> None:
        self.fetch, self.limit, self.chunk = fetch, limit, chunk
        self.buffer = b""
        self.start = 0  # file offset of buffer[0]
        self.position = 0

    def _ensure(self, size: int) -> None:
        end = self.position + size
        if end > self.limit:
            raise GGUFError(f"the header claims more than the {self.limit:,}-byte read limit (truncated or damaged)")
        while end > self.start + len(self.buffer):
            want = max(self.chunk, end - (self.start + len(self.buffer)))
            data = self.fetch(self.start + len(self.buffer), want)
            if not data:
                raise GGUFError("the file ends inside its header (truncated)")
            self.buffer += data
            self.chunk = min(self.chunk * 2, 16 << 20)
        if self.position - self.start > (8 << 20):  # drop what was read, keep memory small
            cut = self.position - self.start
            self.buffer, self.start = self.buffer[cut:], self.position

    def read(self, size: int) -> bytes:
        self._ensure(size)
        offset = self.position - self.start
        self.position += size
        return self.buffer[offset:offset + size]

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self, limit: int = 1 << 20) -> str:
        length = self.unpack("<Q")
        if length > limit:
            raise GGUFError(f"a string of {length:,} bytes in the header (damaged file)")
        return self.read(length).decode("utf-8", "replace")

    def skip(self, size: int) -> None:
        self._ensure(size)
        self.position += size

    def skip_strings(self, count: int) -> None:
        """Skip ``count`` length-prefixed strings (a vocabulary) in a tight loop over the buffer."""
        unpack_from = struct.unpack_from
        while count:
            self._ensure(8)
            buffer, base = self.buffer, self.start
            offset, end = self.position - base, len(buffer)
            while count and offset + 8 <= end:
                length = unpack_from("<Q", buffer, offset)[0]
                if offset + 8 + length > end:
                    break
                offset += 8 + length
                count -= 1
            self.position = base + offset
            if count:  # the next string crosses the buffer's end: read on
                length = self.unpack("<Q")
                if length > 1 << 20:
                    raise GGUFError(f"a string of {length:,} bytes in the header (damaged file)")
                self.skip(length)
                count -= 1


def _value(cursor: _Cursor, kind: int):
    if kind in SCALARS:
        return cursor.unpack(SCALARS[kind])
    if kind == STRING:
        return cursor.string()
    if kind == ARRAY:
        item_kind, count = cursor.unpack("<I"), cursor.unpack("<Q")
        if count > 50_000_000:
            raise GGUFError(f"an array of {count:,} items in the header (damaged file)")
        if count > MAX_KEEP_ARRAY:
            _skip_array(cursor, item_kind, count)
            return {"array_length": count}
        return [_value(cursor, item_kind) for _ in range(count)]
    raise GGUFError(f"unknown metadata value type {kind} (damaged file or a newer GGUF version)")


def _skip_array(cursor: _Cursor, kind: int, count: int) -> None:
    if kind in SCALARS:
        cursor.skip(struct.calcsize(SCALARS[kind]) * count)
    elif kind == STRING:
        cursor.skip_strings(count)
    else:
        for _ in range(count):
            _value(cursor, kind)


def read_header(fetch: Callable[[int, int], bytes], limit: int = 64 << 20) -> GGUFHeader:
    cursor = _Cursor(fetch, limit)
    try:
        magic = cursor.read(4)
    except GGUFError:
        raise GGUFError("not a GGUF file (too short)") from None
    if magic != MAGIC:
        raise GGUFError("not a GGUF file (no GGUF magic at the start)")
    version = cursor.unpack("<I")
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count, kv_count = cursor.unpack("<Q"), cursor.unpack("<Q")
    if tensor_count > 1_000_000 or kv_count > 1_000_000:
        raise GGUFError("the header's counts are implausible (damaged file)")
    header = GGUFHeader(version=version)
    for _ in range(kv_count):
        key = cursor.string(limit=65536)
        header.metadata[key] = _value(cursor, cursor.unpack("<I"))
    for _ in range(tensor_count):
        name = cursor.string(limit=65536)
        n_dims = cursor.unpack("<I")
        if n_dims > 8:
            raise GGUFError(f"tensor {name} has {n_dims} dimensions (damaged file)")
        shape = tuple(cursor.unpack("<Q") for _ in range(n_dims))
        header.tensors.append(TensorInfo(name, shape, cursor.unpack("<I"), cursor.unpack("<Q")))
    header.header_bytes = cursor.position
    for tensor in header.tensors:
        check_tensor(tensor)
    return header


MAX_ELEMENTS = 1 << 42  # four trillion: no real tensor comes close


def check_tensor(tensor: TensorInfo) -> None:
    """What llama.cpp would refuse, refused here by name: an unknown type, rows that are not
    a whole number of the type's blocks (ggml requires ``ne[0] % block_size == 0``), and
    shapes no file can hold."""
    if tensor.type_id not in QUANT_SIZES:
        raise GGUFError(f"tensor {tensor.name} has unknown ggml type {tensor.type_id}")
    name, block, _ = QUANT_SIZES[tensor.type_id]
    if any(dim <= 0 for dim in tensor.shape) or tensor.n_elements > MAX_ELEMENTS:
        raise GGUFError(f"tensor {tensor.name} has an impossible shape {list(tensor.shape)}")
    if tensor.shape and tensor.shape[0] % block:
        raise GGUFError(f"tensor {tensor.name}: rows of {tensor.shape[0]:,} are not a multiple of {name}'s block "
                        f"of {block} (llama.cpp refuses to load it)")


def check_data_fits(header: GGUFHeader, file_size: int) -> None:
    """Every tensor's data lies inside the file (after the aligned header)."""
    alignment = header.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment > 1 << 20:
        raise GGUFError(f"general.alignment is {alignment!r} (damaged file)")
    start = -(-header.header_bytes // alignment) * alignment
    for tensor in header.tensors:
        if start + tensor.offset + tensor.n_bytes > file_size:
            raise GGUFError(f"tensor {tensor.name}: its data runs past the end of the file "
                            f"({start + tensor.offset + tensor.n_bytes:,} > {file_size:,} bytes; truncated download?)")


def read_local(path) -> GGUFHeader:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise GGUFError(f"{path}: {exc.strerror or exc}") from None
    with handle:
        size = handle.seek(0, 2)

        def fetch(offset: int, length: int) -> bytes:
            handle.seek(offset)
            return handle.read(length)

        try:
            header = read_header(fetch, limit=min(size, 256 << 20))
            check_data_fits(header, size)
            return header
        except GGUFError as exc:
            raise GGUFError(f"{path}: {exc}") from None
