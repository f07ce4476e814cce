"""The vmlinux file's DWARF, for the few facts gdb's Python API hides.

gdb gives an inlined function's parameters in the order of the inlined
instance's DW_TAG_formal_parameter DIEs, which is the compiler's choice:
gcc 12 (Debian's 6.1 and 6.12) emits them reversed, gcc 16 (sid's 7.2) in
declaration order.  The abstract instance (the DW_TAG_subprogram with
DW_AT_inline that the inlined copies point at) lists them as declared;
gdb does not expose it, so kx reads it here.

Only the compilation unit that holds a given pc is parsed (.debug_aranges
names it, DW_AT_sibling skips the subtrees), straight from the file: about
0.3 s for the first unit of a file, 0.1-0.2 s for each further one.  The
sections are read through windows on the open file, never loaded whole
(.debug_info is about 250 MB).  No gdb: unit tests read the cached files.
"""
import io
from typing import Dict, List, Optional

from gdbext.kernel import vmlinux


class _Window(io.RawIOBase):
    """A section of the file as a stream of its own (offset 0 = its start)."""

    def __init__(self, f, base: int, size: int):
        super().__init__()
        self._f, self._base, self._size, self._pos = f, base, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + pos
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buf):
        n = max(0, min(len(buf), self._size - self._pos))
        self._f.seek(self._base + self._pos)
        data = self._f.read(n)
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


class _Dwarf:
    def __init__(self, path: str):
        from elftools.dwarf.dwarfinfo import DebugSectionDescriptor
        from elftools.elf.elffile import ELFFile

        f = open(path, "rb")

        class LazyELF(ELFFile):
            def _read_dwarf_section(self, section, relocate_dwarf_sections):
                return DebugSectionDescriptor(
                    stream=_Window(f, section["sh_offset"], section["sh_size"]), name=section.name,
                    global_offset=section["sh_offset"], size=section["sh_size"], address=section["sh_addr"])

        self._file = f
        elf = LazyELF(f)
        self.info = elf.get_dwarf_info(relocate_dwarf_sections=False) if elf.has_dwarf_info() else None
        self._aranges = None
        self._params: Dict[int, Dict[str, List[str]]] = {}

    def unit_offset(self, pc: int) -> Optional[int]:
        if self._aranges is None:
            self._aranges = self.info.get_aranges() or False
        return self._aranges.cu_offset_at_addr(pc) if self._aranges else None

    def unit_parameters(self, cu_offset: int) -> Dict[str, List[str]]:
        """{function: its parameter names as declared} for the unit's
        top-level subprograms that have named parameters."""
        if cu_offset not in self._params:
            out = {}
            top = self.info.get_CU_at(cu_offset).get_top_DIE()
            for die in top.iter_children():
                name = die.attributes.get("DW_AT_name")
                if die.tag != "DW_TAG_subprogram" or name is None or not die.has_children:
                    continue
                params = [c.attributes["DW_AT_name"].value.decode("ascii", "replace")
                          for c in die.iter_children()
                          if c.tag == "DW_TAG_formal_parameter" and "DW_AT_name" in c.attributes]
                if params:
                    out.setdefault(name.value.decode("ascii", "replace"), params)
            self._params[cu_offset] = out
        return self._params[cu_offset]


_files: Dict[tuple, Optional[_Dwarf]] = {}


def _dwarf(path: str) -> Optional[_Dwarf]:
    key = vmlinux.file_key(path)
    if key not in _files:
        try:
            d = _Dwarf(path)
        except ImportError:
            raise vmlinux.PyelftoolsMissing() from None
        except Exception:  # not an ELF file, truncated, ...: nothing to say
            d = None
        _files[key] = d if d is not None and d.info is not None else None
    return _files[key]


def declared_parameters(path: str, function: str, pc: int) -> Optional[List[str]]:
    """The parameter names of `function` in declaration order, from the
    compilation unit holding `pc` (where the function is defined or
    inlined), or None when the file's DWARF does not say."""
    d = _dwarf(path)
    if d is None:
        return None
    try:
        off = d.unit_offset(pc)
        return None if off is None else d.unit_parameters(off).get(function)
    except Exception:  # malformed DWARF: pyelftools raises assorted errors
        return None
