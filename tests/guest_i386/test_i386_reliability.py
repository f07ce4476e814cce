"""The reliability check on the i386 guest: every kx command, in text and
--json, in four target states (a vCPU idle in the kernel, at
entry_INT80_32's first instruction on the PTI user page tables, at
entry_SYSENTER_32, in do_int80_syscall_32), leaves the guest exactly as it
was by QEMU's monitor (tests/reliability.py Snapshotter: `info registers
-a`, the code at each vCPU's eip, the kernel text, gdb's breakpoints,
scheduler-locking, PhyMemMode), and prints no traceback."""
import pytest

from tests import reliability as R

PAGE_OFFSET = 0xC0000000          # CONFIG_PAGE_OFFSET: the kernel text's phys = virt - this
COMMANDS = ("kx task", "kx ps", "kx regs", "kx event", "kx syscalls --check", "kx idt", "kx gdt", "kx tss",
            "kx msr", "kx cr", "kx vdso", "kx kaslr", "kx pagewalk $pc", "kx dmesg --count 3", "bt")
STATES = {
    "idle": None,
    "entry_INT80_32": ("entry_INT80_32", "$eax == 4"),
    "entry_SYSENTER_32": ("entry_SYSENTER_32", "$eax == 4"),
    "do_int80_syscall_32": ("do_int80_syscall_32", "((struct pt_regs *)$eax)->orig_ax == 20"),
}


class Snapshotter32(R.Snapshotter):
    """The same snapshot with the i386 kernel text (phys = virt - PAGE_OFFSET)."""

    def __init__(self, kx):
        super().__init__(kx, with_text=False)
        s = kx.symbols
        self.text = (s["_text"] - PAGE_OFFSET, s["_etext"] - s["_text"])
        probe = self.xp(s["entry_INT80_32"] - PAGE_OFFSET, 8)
        assert probe, "the kernel text is not at _text - PAGE_OFFSET"


@pytest.mark.parametrize("state", list(STATES))
def test_commands_leave_the_i386_guest_unchanged(kx, state):
    if STATES[state]:
        kx.run_to(*STATES[state])
    snapper = Snapshotter32(kx)
    findings = []
    for command in COMMANDS:
        for line in (command, command + " --json" if command != "bt" else "output $kx_current()"):
            before = snapper.take()
            where = f"i386/{state}: {line}"
            R.record_run("i386-6.1", state, line)
            r = R.run_checked(kx, line, where)
            findings += [f"`{line}`: {p}" for p in r["problems"]]
            for d in R.diff(before, snapper.take()):
                R.record_disturbance(where, d)
                findings.append(f"`{line}` disturbed the guest: {d}")
    assert not findings, "\n".join(findings[:30])


FUZZ_PER_COMMAND = 4     # tests/guest/test_cli_fuzz.py draws 36 on x86-64; KX_FUZZ_N there explores more
FUZZ_PER_FUNCTION = 3


def test_cli_fuzz_on_i386(kx, tmp_path):
    """tests/guest/test_cli_fuzz.py's fuzzer, a small draw, at
    entry_INT80_32 (PTI user page tables): no traceback, one-line errors,
    the guest unchanged."""
    from tests.guest.test_cli_fuzz import fuzz_every_command
    kx.run_to("entry_INT80_32")
    fuzz_every_command(kx, "i386-6.1", Snapshotter32(kx), tmp_path, FUZZ_PER_COMMAND, FUZZ_PER_FUNCTION)
