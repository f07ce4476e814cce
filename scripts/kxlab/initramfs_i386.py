"""The i386 guest's userland, from scripts/guest/: static 32-bit binaries
only (the 686-pae kernel runs no 64-bit code).

/init and /bin/kxwork: kxwork32.c (gcc -m32 -static; one binary, init and
the workload).  /bin/hello32: the seed's `int $0x80` hello; /bin/sysenter32:
the same write through the vDSO's __kernel_vsyscall (sysenter).  The image
and the unpacked binaries live in $KX_CACHE/initramfs-i386/, keyed by the
sources' hash like initramfs.build().
"""
import pathlib
import subprocess
import tempfile

from . import initramfs, paths
from .initramfs import TARGET_FILE_TEXT, _Newc, finish

SOURCES = ("kxwork32.c", "kxguest.h", "hello32.S", "sysenter32.S")
BINARIES = ("kxwork32", "hello32", "sysenter32")


def _build(out: pathlib.Path) -> dict:
    src = paths.GUEST_SRC
    run = lambda *argv: subprocess.run(argv, check=True, cwd=out)  # noqa: E731
    run("gcc", "-m32", "-static", "-O2", "-Wall", "-Werror", "-o", "kxwork32", str(src / "kxwork32.c"))
    for name in ("hello32", "sysenter32"):
        run("as", "--32", "-o", f"{name}.o", str(src / f"{name}.S"))
        run("ld", "-m", "elf_i386", "-o", name, f"{name}.o")
    return {name: (out / name).read_bytes() for name in BINARIES}


def sources_hash() -> str:
    return initramfs.hash_of([paths.GUEST_SRC / name for name in SOURCES] + [__file__])


def out_dir() -> pathlib.Path:
    d = paths.cache_dir() / "initramfs-i386"
    d.mkdir(parents=True, exist_ok=True)
    return d


def build(force: bool = False) -> pathlib.Path:
    """The gzip'd i386 initramfs, built if needed."""
    image = out_dir() / f"kx-{sources_hash()}.cpio.gz"
    if image.exists() and not force:
        return image
    with tempfile.TemporaryDirectory(prefix="kx-initramfs-i386-") as tmp:
        bins = _build(pathlib.Path(tmp))
        cpio = _Newc()
        for d in ("bin", "dev", "etc", "proc", "tmp", "sbin", "sys"):
            cpio.dir(d)
        cpio.chardev("dev/console", 5, 1)
        cpio.chardev("dev/null", 1, 3)
        cpio.file("init", bins["kxwork32"])
        cpio.file("bin/kxwork", bins["kxwork32"])
        cpio.file("bin/hello32", bins["hello32"])
        cpio.file("bin/sysenter32", bins["sysenter32"])
        cpio.file("etc/kx-target", TARGET_FILE_TEXT, 0o644)
        # The tests read the binaries' ELF symbols as ground truth.
        finish(image, out_dir() / f"bin-{sources_hash()}", bins, cpio)
    return image


def binaries_dir() -> pathlib.Path:
    build()
    return out_dir() / f"bin-{sources_hash()}"
