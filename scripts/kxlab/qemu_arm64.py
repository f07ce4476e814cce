"""The arm64 guest's QEMU: qemu-system-aarch64 -M virt (package
qemu-system-arm), and its kernel command line.

-cpu max with lpa2=off keeps the 52-bit-VA 6.12 cloud kernel on 48-bit
virtual addresses (LPA2 is kx's next step); pauth-impdef=on makes pointer
authentication QEMU's cheap implementation-defined algorithm instead of
QARMA, which TCG runs slowly.  KASLR is on by default (the device tree's
kaslr-seed): `nokaslr` turns it off.  KPTI: `kpti=1|0` (arch/arm64/kernel/
cpufeature.c), else the kernel decides from the CPU model.
"""
import shutil

from . import bootstrap

BINARY = "qemu-system-aarch64"
DEFAULT_CPU = "max,lpa2=off,pauth-impdef=on"
CONSOLE = "ttyAMA0"    # the virt machine's PL011


def prefix(cpu: str = "") -> list:
    """QEMU's binary, machine and CPU model."""
    bootstrap.ensure_arch("arm64")
    return [shutil.which(BINARY) or BINARY, "-M", "virt", "-cpu", cpu or DEFAULT_CPU]


def cmdline_words(kaslr: bool, pti: str) -> list:
    words = [f"console={CONSOLE}", "panic=-1", "loglevel=4"]
    if not kaslr:
        words.append("nokaslr")
    if pti in ("on", "off"):
        words.append(f"kpti={1 if pti == 'on' else 0}")
    return words
