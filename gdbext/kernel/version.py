"""Which kernel the loaded vmlinux is: `linux_banner`, read from the ELF file."""
import re
from typing import Optional, Tuple

from gdbext import errors
from gdbext.kernel import symbols, vmlinux

BANNER_MAX = 512
_cache = {}


def file_banner() -> Tuple[Optional[int], bytes]:
    """(link address, bytes up to and with the NUL) of the vmlinux file's
    linux_banner; (None, b"") when the file has none or cannot be read."""
    path = symbols.vmlinux_path()
    key = vmlinux.file_key(path)
    if key not in _cache:
        table = symbols.elf_table()  # the file itself, whatever the match verdict
        link = table.link_address("linux_banner") if isinstance(table, symbols.SymbolTable) else None
        raw = b""
        if link is not None:
            try:
                raw = vmlinux.image(path).read(link, BANNER_MAX).split(b"\0")[0] + b"\0"
            except errors.KxError:   # pyelftools missing, not in a file-backed section
                link = None
        _cache.clear()
        _cache[key] = (link, raw)
    return _cache[key]


def banner_from_file() -> str:
    return file_banner()[1].rstrip(b"\0").decode("ascii", "replace")


def version() -> tuple:
    """(major, minor) of the vmlinux, e.g. (6, 12); (0, 0) when unknown."""
    m = re.search(r"Linux version (\d+)\.(\d+)", banner_from_file())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
