"""The arm64 guest's QEMU: qemu-system-aarch64 -M virt (package
qemu-system-arm), and its kernel command line.

-cpu max with lpa2=off keeps the 52-bit-VA 6.12 cloud kernel on 48-bit
virtual addresses; `lab boot --lpa2` leaves FEAT_LPA2 on, and the 6.12
kernel then runs with 52-bit VAs (TCR_EL1.DS = 1, T1SZ = 12, five levels
from level -1; arch/arm64/kernel/pi/map_kernel.c); pauth-impdef=on makes pointer
authentication QEMU's cheap implementation-defined algorithm instead of
QARMA, which TCG runs slowly.  KASLR is on by default (the device tree's
kaslr-seed): `nokaslr` turns it off.  KPTI: `kpti=1|0` (arch/arm64/kernel/
cpufeature.c), else the kernel decides from the CPU model.
"""
from . import bootstrap, qemu10

BINARY = "qemu-system-aarch64"
DEFAULT_CPU = "max,lpa2=off,pauth-impdef=on"
LPA2_CPU = "max,lpa2=on,pauth-impdef=on"
CONSOLE = "ttyAMA0"    # the virt machine's PL011


def prefix(cpu: str = "", lpa2: bool = False) -> list:
    """QEMU's binary (KX_QEMU's, as for x86: 10.0.2 by default, whose
    gdbstub also gives gdb the pointer-authentication masks), machine and
    CPU model (an explicit `cpu` wins)."""
    bootstrap.ensure_arch("arm64")
    q = qemu10.select().sibling(BINARY)
    return [*q.prefix(), "-M", "virt", "-cpu", cpu or (LPA2_CPU if lpa2 else DEFAULT_CPU)]


def cmdline_words(kaslr: bool, pti: str) -> list:
    words = [f"console={CONSOLE}", "panic=-1", "loglevel=4"]
    if not kaslr:
        words.append("nokaslr")
    if pti in ("on", "off"):
        words.append(f"kpti={1 if pti == 'on' else 0}")
    return words
