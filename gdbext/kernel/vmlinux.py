"""The vmlinux file on disk, the one reader of it (pyelftools).

Everything kx knows before it reads guest memory comes from here: bytes at
link-time addresses (the syscall tables and switch, linux_banner, the vDSO
images, ftrace metadata), the ELF symbol table, the sections and the GNU
build-id note.  Each file is opened once and kept open (pyelftools reads
sections lazily from the stream); a rebuilt file (new mtime or size) is
opened again.  No gdb: unit tests read the cached Debian vmlinux files.
"""
import bisect
import os
import struct
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from gdbext import errors
from gdbext.decoders import relocations
from gdbext.decoders import elfnote

_STT_NOTYPE, _STT_OBJECT, _STT_FUNC = 0, 1, 2
_SHF_ALLOC = 0x2
_SHN_UNDEF, _SHN_ABS = 0, 0xFFF1
_NOTE_HEADER = 12               # namesz, descsz, type (System V gABI)


class PyelftoolsMissing(errors.NotSupported):
    def __init__(self):
        super().__init__("reading the vmlinux file needs pyelftools (./scripts/lab bootstrap installs it)")


class Section(NamedTuple):
    name: str
    address: int        # link-time address (0: not loaded, or zero-based per-cpu data)
    size: int
    offset: int         # in the file
    file_backed: bool   # not SHT_NOBITS (.bss)
    alloc: bool         # SHF_ALLOC: part of the running kernel


class Symbol(NamedTuple):
    value: int          # link-time address, or the number of an absolute symbol
    size: int
    name: str
    absolute: bool      # SHN_ABS: a number, never the name of an address


class VmlinuxImage:
    """One vmlinux file: bytes at link addresses, symbols, sections, notes."""

    def __init__(self, path: str):
        try:
            from elftools.elf.elffile import ELFFile
        except ImportError:
            raise PyelftoolsMissing() from None
        self.path = path
        self._file = open(path, "rb")
        try:
            self._elf = ELFFile(self._file)
        except Exception:
            self._file.close()
            raise
        self.sections = [Section(s.name, s["sh_addr"], s["sh_size"], s["sh_offset"],
                                 s["sh_type"] != "SHT_NOBITS", bool(s["sh_flags"] & _SHF_ALLOC))
                         for s in self._elf.iter_sections()]
        self._backed = sorted((s for s in self.sections if s.address and s.size and s.file_backed),
                              key=lambda s: s.address)
        self._starts = [s.address for s in self._backed]
        self.machine = self._elf["e_machine"]       # "EM_X86_64", "EM_AARCH64"
        self._relocs = None

    def section(self, name: str) -> Optional[Section]:
        return next((s for s in self.sections if s.name == name), None)

    def section_at(self, address: int) -> Optional[Section]:
        """The section whose file bytes hold link address `address`."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._backed[i].address + self._backed[i].size:
            return self._backed[i]
        return None

    def read(self, address: int, size: int) -> bytes:
        """Up to `size` bytes at a link address (fewer at a section's end);
        DecodeError where the file holds no bytes (.bss, per-cpu, ...).
        A position-independent vmlinux (arm64) gets its relative
        relocations applied, as the kernel does at boot."""
        sec = self.section_at(address)
        if sec is None:
            raise errors.DecodeError(f"{address:#x} is not in a file-backed section of {self.path}")
        self._file.seek(sec.offset + address - sec.address)
        data = self._file.read(min(size, sec.address + sec.size - address))
        return relocations.apply(self._relative_relocations(), address, data)

    def _relative_relocations(self):
        if self._relocs is None:
            from gdbext import arch
            a = arch.for_elf_machine(self.machine)
            kind = a.relative_relocation if a is not None else None
            sec = self.section(".rela.dyn")
            raw = b""
            if sec is not None and kind is not None:
                self._file.seek(sec.offset)
                raw = self._file.read(sec.size)
            self._relocs = relocations.RelativeRelocations.parse_rela(raw, kind or 0)
        return self._relocs

    @property
    def zero_based_sections(self) -> List[str]:
        """Allocated sections linked at 0: zero-based per-cpu data (up to 6.14)."""
        return [s.name for s in self.sections if not s.address and s.size and s.alloc]

    def symbols(self, absolute: bool = True) -> List[Tuple[int, int, str]]:
        """(link address, size, name) of the .symtab's functions, objects and
        untyped labels that have a value and a section; absolute=False drops
        the SHN_ABS ones (symbol_entries)."""
        return [(s.value, s.size, s.name) for s in self.symbol_entries() if absolute or not s.absolute]

    def symbol_entries(self) -> List["Symbol"]:
        """Every symbol symbols() lists, each marked absolute or not.

        Absolute (SHN_ABS) symbols are numbers, not places: 5.10's exported
        `__crc_*` (8689 export CRCs that genksyms wrote as `__crc_sym =
        0x...;` in a linker script; since 5.19, commit 7b4537199a4a "kbuild:
        link symbol CRCs at final link", they are labels in __kcrctab),
        phys_startup_64, kexec_control_code_size, init_per_cpu__* aliases.
        Their names may be looked up, but none names an address."""
        symtab = self._elf.get_section_by_name(".symtab")
        if symtab is None:
            raise errors.KxError(f"{self.path} has no symbol table")
        strtab = self._elf.get_section(symtab["sh_link"]).data()
        out = []
        # struct.iter_unpack over Elf64_Sym: 110k entries in ~0.2 s, where
        # pyelftools' per-symbol objects take seconds.
        for name_off, info, shndx, value, size in self._raw_symbols(symtab.data()):
            if not value or (info & 0xF) not in (_STT_NOTYPE, _STT_OBJECT, _STT_FUNC) or shndx == _SHN_UNDEF:
                continue
            name = strtab[name_off:strtab.index(b"\0", name_off)].decode("ascii", "replace")
            if name and not name.startswith("$"):
                out.append(Symbol(value, size, name, shndx == _SHN_ABS))
        return out

    @property
    def pointer_size(self) -> int:
        """4 for an ELFCLASS32 vmlinux (i386), 8 for ELFCLASS64."""
        return self._elf.elfclass // 8

    def _raw_symbols(self, data: bytes):
        """(st_name, st_info, st_shndx, st_value, st_size) of each symbol:
        Elf64_Sym or Elf32_Sym, whose members come in another order."""
        if self.pointer_size == 8:
            for name_off, info, _other, shndx, value, size in struct.iter_unpack("<IBBHQQ", data):
                yield name_off, info, shndx, value, size
        else:
            for name_off, value, size, info, _other, shndx in struct.iter_unpack("<IIIBBH", data):
                yield name_off, info, shndx, value, size

    def build_id_note(self) -> Optional[Tuple[int, bytes, str]]:
        """(link address of the GNU build-id note, the note's bytes, the id
        in hex) from the .notes section, or None."""
        sec = self.section(".notes")
        if sec is None or not sec.address:
            return None
        try:
            notes = self.read(sec.address, sec.size)
        except errors.DecodeError:
            return None
        hit = elfnote.find_build_id(notes)
        if hit is None:
            return None
        off, build_id = hit
        note_len = _NOTE_HEADER + 4 + len(build_id)   # header, "GNU\0", the id
        return sec.address + off, notes[off:off + note_len], build_id.hex()

    def close(self) -> None:
        self._file.close()


def file_key(path: str):
    """The file's identity: a rebuilt vmlinux at the same path is another file."""
    try:
        st = os.stat(path)
        return path, st.st_mtime_ns, st.st_size
    except OSError:
        return path, None, None


_images: Dict[str, Tuple[tuple, VmlinuxImage]] = {}


def image(path: str) -> VmlinuxImage:
    """The open image of the file at `path` (PyelftoolsMissing without
    pyelftools, OSError when it cannot be read)."""
    key = file_key(path)
    hit = _images.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    if hit is not None:
        hit[1].close()
        del _images[path]
    img = VmlinuxImage(path)
    _images[path] = (key, img)
    return img


# Readers over any read(address, size) -> bytes: the image's, or a unit
# test's fake memory.

def read_cstring(read: Callable[[int, int], bytes], address: int, cap: int = 256) -> str:
    out = b""
    while len(out) < cap:
        chunk = read(address + len(out), 64)
        if not chunk:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            return (out + chunk[:nul]).decode("ascii", "replace")
        out += chunk
    raise errors.DecodeError(f"no NUL within {cap} bytes at {address:#x}")


def read_u64s(read: Callable[[int, int], bytes], address: int, count: int, size: int = 8) -> List[int]:
    """`count` little-endian words of `size` bytes (8, or 4 for an i386
    kernel's unsigned longs) at `address`."""
    raw = read(address, size * count)
    if len(raw) != size * count:
        raise errors.DecodeError(f"table at {address:#x} is cut short ({len(raw)} of {size * count} bytes)")
    return list(struct.unpack(f"<{count}{'Q' if size == 8 else 'I'}", raw))
