"""`./scripts/lab demo --arch i386`, as a student following the seeds runs
it: the int $0x80 gate, the TSS, the live call, SAVE_ALL's pt_regs, the
table lookup and the handler, on Debian's 686-pae kernel.

Ground truth: the kernel's System.map (the gate's handler, the handler the
table gives nr 4) and hello32's own call (write(1, msg, 30)).
"""
import re

from kxlab import kernels
from tests.guestlib import output_section as section, run_lab


def test_demo_tells_the_seed_story():
    out = "".join(run_lab("demo", "--arch", "i386"))
    symbols = kernels.cached("6.1", arch="i386").symbols()
    gate = section(out, "(gdb) kx idt 0x80", "(gdb) kx tss")
    assert f"{symbols['entry_INT80_32']:#010x}" in gate and "entry_INT80_32" in gate, gate
    assert re.search(r"DPL\s*=?\s*3|dpl 3|DPL3", gate, re.I), gate
    event = section(out, "(gdb) kx event", "(gdb) x/5wx")
    assert re.search(r"\bwrite\b", event) and "Hello from int $0x80" in event, event
    regs = section(out, "(gdb) kx regs", "(gdb) kx syscalls write")
    args = re.search(r"arguments: (.*)", regs)
    assert args and re.search(r"\bebx=0x1\b", args.group(1)) and re.search(r"\bedx=0x1e\b", args.group(1)), regs
    table = section(out, "(gdb) kx syscalls write", "(gdb) bt")
    assert "__ia32_sys_write" in table and f"{symbols['__ia32_sys_write']:#010x}" in table, table
    assert "kx trace: 10 events" in out
