"""Which kernel the loaded vmlinux is: `linux_banner`, read from the ELF file."""
import re

from gdbext.kernel import symbols

_cache = {}


def banner_from_file() -> str:
    path = symbols.vmlinux_path()
    if path in _cache:
        return _cache[path]
    table = symbols.elf_table()  # the file itself, whatever the match verdict
    addr = table.lookup("linux_banner") if hasattr(table, "lookup") else None
    text = ""
    if addr is not None:
        try:
            from elftools.elf.elffile import ELFFile
            with open(path, "rb") as f:
                elf = ELFFile(f)
                for sec in elf.iter_sections():
                    start, size = sec["sh_addr"], sec["sh_size"]
                    if start <= addr - table.slide < start + size and sec["sh_type"] != "SHT_NOBITS":
                        off = addr - table.slide - start
                        f.seek(sec["sh_offset"] + off)
                        text = f.read(512).split(b"\0")[0].decode("ascii", "replace")
                        break
        except ImportError:
            pass
    _cache[path] = text
    return text


def version() -> tuple:
    """(major, minor) of the vmlinux, e.g. (6, 12); (0, 0) when unknown."""
    m = re.search(r"Linux version (\d+)\.(\d+)", banner_from_file())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
