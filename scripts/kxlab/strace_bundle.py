"""Debian's strace for the guest: the oracle kx's syscall decoding is
compared with (tests/guest/test_strace_oracle.py).

strace is linked dynamically (libunwind, liblzma, glibc), so the bundle is
the binary plus the shared objects it loads, taken from the packages of
the machine's own apt sources with `apt-get download` (nothing is
installed, the sources are not changed), unpacked with `dpkg-deb -x`.
The files land in the lab's cache under strace/ once; initramfs.py adds
them to the guest's cpio as /bin/strace, /lib/x86_64-linux-gnu/ and the
loader at /lib64/ld-linux-x86-64.so.2 (the path in strace's PT_INTERP).
"""
import pathlib
import shutil
import subprocess
import tempfile
from typing import Dict, Optional

from . import bootstrap, debs, paths

PACKAGES = ("strace", "libunwind8", "liblzma5", "libc6")
LIBDIR = "lib/x86_64-linux-gnu"
# Guest path -> the file name pattern searched for in the unpacked packages.
FILES = {
    "bin/strace": "usr/bin/strace",
    f"{LIBDIR}/libunwind-ptrace.so.0": "libunwind-ptrace.so.0",
    f"{LIBDIR}/libunwind-x86_64.so.8": "libunwind-x86_64.so.8",
    f"{LIBDIR}/libunwind.so.8": "libunwind.so.8",
    f"{LIBDIR}/liblzma.so.5": "liblzma.so.5",
    f"{LIBDIR}/libc.so.6": "libc.so.6",
    "lib64/ld-linux-x86-64.so.2": "ld-linux-x86-64.so.2",
}


def bundle_dir() -> pathlib.Path:
    return paths.cache_dir() / "strace"


def _find(root: pathlib.Path, name: str) -> Optional[pathlib.Path]:
    """The unpacked file for `name` (a path, or a file name searched in
    the library directories), symlinks resolved inside `root`."""
    if "/" in name:
        hit = root / name
        return hit if hit.exists() else None
    for p in sorted(root.rglob(name)):
        real = p.resolve()
        if real.is_file() and str(real).startswith(str(root.resolve())):
            return real
    return None


def _fetch(out: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory(prefix="kx-strace-") as tmp:
        tmp = pathlib.Path(tmp)
        debs.apt_get_download(PACKAGES, tmp)
        root = tmp / "root"
        for deb in sorted(tmp.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        staging = pathlib.Path(tempfile.mkdtemp(dir=out.parent))
        for guest_path, name in FILES.items():
            found = _find(root, name)
            if found is None:
                raise RuntimeError(f"the packages {' '.join(PACKAGES)} have no {name}")
            target = staging / guest_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, target)
        staging.rename(out)


def ensure() -> Optional[Dict[str, bytes]]:
    """{guest path: bytes} of strace and its libraries, fetched once; None
    (and one log line) when they cannot be had."""
    out = bundle_dir()
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            bootstrap.log("fetching Debian's strace and its libraries for the guest")
            _fetch(out)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            bootstrap.log(f"no strace for the guest: {exc}")
            return None
    return {guest_path: (out / guest_path).read_bytes() for guest_path in FILES}
