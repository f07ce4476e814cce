"""The arm64 guest as kx must leave it, read without kx, for the
reliability checks (tests/reliability.py's Snapshotter, arm64 side).

Per vCPU: QEMU's own `info registers` (PC, X0-X30, SP, PSTATE with the EL,
FPCR/FPSR, the SVE P/Z registers), the system registers the gdbstub
exposes (QEMU's org.qemu.gdb.arm.sys.regs feature, gdb's `cp_regs` group,
read fresh from the stub: SCTLR, TCR/TTBRn/MAIR, VBAR, SP_EL0/SP_EL1,
TPIDR*, ESR/ELR/SPSR, the DBGB/DBGW debug registers, the PAC keys...), and
the 16 bytes at its pc.  Then the SHA-1 of the kernel text in guest RAM
(pmemsave of _stext.._etext at the physical address the monitor's
gva2gpa gives, checked against the vmlinux file's bytes at `vectors`) and gdb's own settings
(breakpoints, scheduler-locking, PhyMemMode, the selected thread).
"""
import re

from tests import reliability as R
from tests import vmlinux_file

# How much of `vectors` to compare with the file: the first entry's
# `sub sp, sp, #PT_REGS_SIZE; add sp, sp, x0` (kernel_ventry in
# arch/arm64/kernel/entry.S), which no alternative or ftrace patches.
VECTORS_PROBE = 8


class Arm64Snapshotter(R.Snapshotter):
    def __init__(self, a64, with_text: bool = True, slide: int = 0):
        """Take it at a stop in the kernel (EL1 on swapper_pg_dir): `slide`
        is the KASLR text slide (System.map is the link layout)."""
        super().__init__(a64, with_text=False)
        if with_text:
            # _stext.._etext (map_kernel's text segment; the .head.text page
            # before _stext is mapped elsewhere), physically contiguous.
            s = a64.symbols
            phys = self.gva2gpa(s["_stext"] + slide)
            assert self.gva2gpa(s["_etext"] + slide - 1) == phys + s["_etext"] - 1 - s["_stext"]
            self.text = (phys, s["_etext"] - s["_stext"])
            in_ram = self.xp(phys + s["vectors"] - s["_stext"], VECTORS_PROBE)
            assert in_ram == vmlinux_file.read(a64.vmlinux, s["vectors"], VECTORS_PROBE), in_ram.hex()

    def gva2gpa(self, address: int) -> int:
        text = self.kx.guest.hmp(f"gva2gpa {address:#x}")
        m = re.search(r"gpa: (0x[0-9a-f]+)", text)
        assert m, f"gva2gpa {address:#x}: {text!r}"
        return int(m.group(1), 16)

    def cpu_side(self) -> dict:
        kx = self.kx
        snap = {}
        kx.gdb.cmd("maint flush register-cache")   # the stub's values, not gdb's cached ones
        for cpu in self.cpus():
            text = kx.guest.hmp(f"cpu {cpu}") + kx.guest.hmp("info registers")
            snap[f"cpu{cpu} registers"] = text.strip()
            pc = int(re.search(r"\bPC=([0-9a-f]{16})", text).group(1), 16)
            snap[f"cpu{cpu} code@{pc:#x}"] = kx.guest.hmp(f"x /16xb {pc:#x}").strip()
            # gdb thread N is vCPU N-1; `thread apply` restores the selection.
            snap[f"cpu{cpu} system registers"] = kx.gdb.cmd(f"thread apply {cpu + 1} -q info registers cp_regs").strip()
        return snap
