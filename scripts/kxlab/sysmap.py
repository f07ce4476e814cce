"""System.map from a vmlinux's ELF symbol table, when no package ships one.

sid's 7.2 packages carry only a stub System.map, and a kernel built by hand
may come without one.  The kernel makes System.map with `nm -n` filtered by
scripts/mksysmap; this does the same with binutils' nm.
"""
import os
import pathlib
import re
import subprocess
import tempfile

# scripts/mksysmap drops these symbol types: a (local absolute), N
# (debugging), U (undefined), w (local weak)...
_DROP_TYPES = set("aNUw")
# ...and these names: local labels, the CRCs and strings of exports, the
# EFI stub's namespace.  (5.10's mksysmap still kept __kstrtab_*.)
_DROP_NAMES = re.compile(r"^(\.L|__crc_|__kstrtab_|__kstrtabns_|__efistub_|\$)")
# A System.map this small is a stub that names the -dbg package.
STUB_BYTES = 64 * 1024


def is_stub(path: pathlib.Path) -> bool:
    return not path.exists() or path.stat().st_size < STUB_BYTES


def lines(vmlinux) -> list:
    out = subprocess.run(["nm", "-n", str(vmlinux)], capture_output=True, text=True, check=True).stdout
    keep = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] in _DROP_TYPES or _DROP_NAMES.match(parts[2]):
            continue
        keep.append(line)
    return keep


def write(vmlinux, dest: pathlib.Path) -> pathlib.Path:
    """Write System.map for `vmlinux` as `dest`, atomically."""
    text = "\n".join(lines(vmlinux)) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".System.map-", dir=dest.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    return dest
