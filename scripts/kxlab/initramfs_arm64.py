"""The arm64 guest's userland, from the sources in scripts/guest/arm64/.

/init is /bin/kxwork (pid 1 runs the init role); /bin/hello64 is the `svc #0`
hello (x8 = 64) and /bin/hello32 the AArch32 `svc 0` hello (r7 = 4), which
the kernel runs as a compat task where the CPU has AArch32 at EL0;
/bin/stay32 an AArch32 task that stays (C without libc: clang
--target=armv7a-linux-gnueabihf -ffreestanding, linked by the cross ld).

Debian's gcc cross compilers conflict with gcc-multilib (the i386 lab needs
that), so C goes through clang --target=aarch64-linux-gnu with Debian's
cross libc (libc6-dev-arm64-cross) and binutils; the hellos are assembled
with the cross binutils alone.  Cached apart from the x86 archive, by the
hash of these sources.
"""
import pathlib
import subprocess
import tempfile

from . import bootstrap, initramfs, paths
from .initramfs import TARGET_FILE_TEXT, _Newc

SRC = paths.GUEST_SRC / "arm64"
SOURCES = ("kxwork.c", "hello64.S", "hello32.S", "stay32.c", "../kxguest.h")
TRIPLE64, TRIPLE32 = "aarch64-linux-gnu", "arm-linux-gnueabihf"


def cache_dir() -> pathlib.Path:
    path = paths.cache_dir() / "initramfs-arm64"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sources_hash() -> str:
    return initramfs.hash_of([SRC / name for name in SOURCES] + [__file__])


def _build(out: pathlib.Path) -> dict:
    run = lambda *argv: subprocess.run(argv, check=True, cwd=out)  # noqa: E731
    run("clang", f"--target={TRIPLE64}", "-static", "-O2", "-Wall", "-Werror",
        "-o", "kxwork", str(SRC / "kxwork.c"))
    run(f"{TRIPLE64}-as", "-o", "hello64.o", str(SRC / "hello64.S"))
    run(f"{TRIPLE64}-ld", "-o", "hello64", "hello64.o")
    run(f"{TRIPLE32}-as", "-o", "hello32.o", str(SRC / "hello32.S"))
    run(f"{TRIPLE32}-ld", "-o", "hello32", "hello32.o")
    run("clang", "--target=armv7a-linux-gnueabihf", "-marm", "-O2", "-Wall", "-Werror", "-ffreestanding",
        "-fno-builtin", "-fno-stack-protector", "-nostdlib", "-c", "-o", "stay32.o", str(SRC / "stay32.c"))
    run(f"{TRIPLE32}-ld", "-o", "stay32", "stay32.o")
    return {name: (out / name).read_bytes() for name in ("kxwork", "hello64", "hello32", "stay32")}


def build(force: bool = False) -> pathlib.Path:
    """The gzip'd arm64 initramfs, built when its sources changed."""
    out_dir = cache_dir()
    image = out_dir / f"kx-{sources_hash()}.cpio.gz"
    if image.exists() and not force:
        return image
    bootstrap.ensure_arch("arm64")
    with tempfile.TemporaryDirectory(prefix="kx-initramfs-arm64-") as tmp:
        bins = _build(pathlib.Path(tmp))
        cpio = _Newc()
        initramfs.base_dirs(cpio)
        cpio.file("init", bins["kxwork"])
        cpio.file("bin/kxwork", bins["kxwork"])
        cpio.file("bin/kxspin", bins["kxwork"])
        cpio.file("bin/hello64", bins["hello64"])
        cpio.file("bin/hello32", bins["hello32"])
        cpio.file("bin/stay32", bins["stay32"])
        cpio.file("etc/kx-target", TARGET_FILE_TEXT, 0o644)
        initramfs.finish(image, out_dir / f"bin-{sources_hash()}", bins, cpio)
    return image


def binaries_dir() -> pathlib.Path:
    build()
    return cache_dir() / f"bin-{sources_hash()}"
