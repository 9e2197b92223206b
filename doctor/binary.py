"""What a native library says about itself: the libraries it needs, and the GPU code it carries.

Read straight from the file, with no tool installed: an ELF shared object's dynamic
section (``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``) or a PE DLL's import table, and the
CUDA fat binary that nvcc embeds (section ``.nv_fatbin`` in ELF, ``.nv_fatb`` in PE),
whose entry headers name the SM architecture of every cubin and PTX. Only headers are
read; a 40 MB library costs a few dozen small reads.

The fat binary layout is not documented by NVIDIA; it follows ``fatbinary_section.h``
(the container header: magic ``0xBA55ED50``, version, header size, payload size) and the
entry header that cuobjdump-compatible readers use (kind at offset 0, 1 = PTX and
2 = ELF; header size at 4; padded payload size at 8; SM version at 28).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

FATBIN_MAGIC = 0xBA55ED50


class BinaryFormatError(ValueError):
    """The file is not an ELF or PE library this reader understands."""


MACH_O_MAGICS = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
                 b"\xca\xfe\xba\xbe")  # 32/64-bit either byte order, and universal binaries


@dataclass
class LibraryInfo:
    format: str  # "elf", "pe" or "mach-o"
    needed: list = field(default_factory=list)  # sonames / DLL names, in file order
    rpath: list = field(default_factory=list)
    runpath: list = field(default_factory=list)
    sm: list = field(default_factory=list)  # cubin architectures, e.g. [75, 80, 86]
    ptx: list = field(default_factory=list)  # PTX virtual architectures

    def to_json(self) -> dict:
        return {"format": self.format, "needed": self.needed, "rpath": self.rpath,
                "runpath": self.runpath, "sm": self.sm, "ptx": self.ptx}


def read_library(path: str) -> LibraryInfo:
    """Dependencies and CUDA architectures of the library at ``path``."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
            if magic == b"\x7fELF":
                return _read_elf(handle)
            if magic[:2] == b"MZ":
                return _read_pe(handle)
            if magic in MACH_O_MAGICS:  # recorded as such; its load commands are not read
                return LibraryInfo("mach-o")
    except (OSError, struct.error) as exc:
        raise BinaryFormatError(f"{path}: {exc}") from None
    raise BinaryFormatError(f"{path}: neither an ELF nor a PE file")


# ----------------------------------------------------------------------------- ELF

def _read_elf(handle: BinaryIO) -> LibraryInfo:
    handle.seek(0)
    ident = handle.read(64)
    is64, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
    if is64:
        (shoff,) = struct.unpack_from(end + "Q", ident, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", ident, 0x3A)
        layout = end + "IIQQQQIIQQ"
    else:
        (shoff,) = struct.unpack_from(end + "I", ident, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", ident, 0x2E)
        layout = end + "IIIIIIIIII"
    if not shoff or not shnum or shstrndx >= shnum:
        raise BinaryFormatError("no section table")
    handle.seek(shoff)
    table = handle.read(shentsize * shnum)
    # name, type, flags, address, offset, size, link, info, align, entsize
    headers = [struct.unpack_from(layout, table, i * shentsize) for i in range(shnum)]
    names = _read_at(handle, headers[shstrndx][4], headers[shstrndx][5])
    sections = {_cstring(names, h[0]): h for h in headers}
    info = LibraryInfo("elf")
    dynamic = sections.get(".dynamic")
    if dynamic:
        strtab = headers[dynamic[6]]  # sh_link: the string table the entries point into
        strings = _read_at(handle, strtab[4], strtab[5])
        raw = _read_at(handle, dynamic[4], dynamic[5])
        entry = struct.Struct(end + ("qQ" if is64 else "iI"))
        for offset in range(0, len(raw) - entry.size + 1, entry.size):
            tag, value = entry.unpack_from(raw, offset)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                info.needed.append(_cstring(strings, value))
            elif tag == 15:  # DT_RPATH
                info.rpath += [p for p in _cstring(strings, value).split(":") if p]
            elif tag == 29:  # DT_RUNPATH
                info.runpath += [p for p in _cstring(strings, value).split(":") if p]
    fatbin = sections.get(".nv_fatbin")
    if fatbin:
        info.sm, info.ptx = _fatbin_architectures(handle, fatbin[4], fatbin[5])
    return info


# ----------------------------------------------------------------------------- PE

def _read_pe(handle: BinaryIO) -> LibraryInfo:
    handle.seek(0x3C)
    (pe_offset,) = struct.unpack("<I", handle.read(4))
    handle.seek(pe_offset)
    if handle.read(4) != b"PE\0\0":
        raise BinaryFormatError("no PE signature")
    _machine, count, _, _, _, optional_size, _ = struct.unpack("<HHIIIHH", handle.read(20))
    optional = handle.read(optional_size)
    (magic,) = struct.unpack_from("<H", optional, 0)
    directories = 96 if magic == 0x10B else 112  # PE32 / PE32+
    import_rva, _ = struct.unpack_from("<II", optional, directories + 8)  # directory 1: imports
    raw_sections = handle.read(40 * count)
    sections = []
    for i in range(count):
        name, vsize, vaddr, rsize, rptr = struct.unpack_from("<8sIIII", raw_sections, i * 40)
        sections.append((name.rstrip(b"\0").decode("ascii", "replace"), vaddr, max(vsize, rsize), rptr, rsize))

    def file_offset(rva: int) -> Optional[int]:
        for _, vaddr, size, rptr, _ in sections:
            if vaddr <= rva < vaddr + size:
                return rptr + rva - vaddr
        return None

    info = LibraryInfo("pe")
    position = file_offset(import_rva) if import_rva else None
    while position is not None:
        descriptor = _read_at(handle, position, 20)
        if len(descriptor) < 20 or descriptor == b"\0" * 20:
            break
        name_offset = file_offset(struct.unpack_from("<I", descriptor, 12)[0])
        if name_offset is None:
            break
        info.needed.append(_cstring(_read_at(handle, name_offset, 256), 0))
        position += 20
    for name, _, _, rptr, rsize in sections:
        if name == ".nv_fatb":
            info.sm, info.ptx = _fatbin_architectures(handle, rptr, rsize)
    return info


# ----------------------------------------------------------------------------- CUDA fat binaries

def _fatbin_architectures(handle: BinaryIO, start: int, size: int) -> tuple:
    """Walk the concatenated fat binaries of one section, entry header by entry header."""
    sm, ptx = set(), set()
    position, stop = start, start + size
    while position + 16 <= stop:
        magic, _version, header_size, payload = struct.unpack("<IHHQ", _read_at(handle, position, 16))
        if magic != FATBIN_MAGIC:
            position += 8  # containers are 8-byte aligned, with padding between them
            continue
        entry, end = position + header_size, min(position + header_size + payload, stop)
        while entry + 32 <= end:
            header = _read_at(handle, entry, 32)
            kind, _, entry_header, padded = struct.unpack_from("<HHIQ", header, 0)
            (arch,) = struct.unpack_from("<I", header, 28)
            (ptx if kind == 1 else sm if kind == 2 else set()).add(arch)
            if entry_header + padded == 0:
                break
            entry += entry_header + padded
        position = end
    return sorted(sm), sorted(ptx)


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _cstring(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    return data[offset:end if end >= 0 else len(data)].decode("utf-8", "replace")
