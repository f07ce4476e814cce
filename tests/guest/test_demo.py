"""`./scripts/lab demo --kernel K`, as a new user runs it, on every kernel
under test: it boots its own guest, stops the workload's marker write at
entry_SYSCALL_64 and walks the call into C.

Ground truth: System.map of the kernel (LSTAR's target, the handler), the
workload's own marker write (fd 1, "KX-MARK\\n", 8 bytes), and the 20 events
the trace step must print.
"""
import re

from kxlab import kernels
from tests.guestlib import run_lab


def test_demo_tells_the_story(kernel_series):
    out = "".join(run_lab("demo", "--kernel", kernel_series))
    symbols = kernels.cached(kernel_series).symbols()
    # kx event at the stop: write(1, "KX-MARK\n", 8) entering through the 64-bit stub.
    event = out[out.index("(gdb) kx event"):out.index("(gdb) kx msr")]
    assert re.search(r"\bwrite\b", event) and "KX-MARK" in event, event
    assert "entry_SYSCALL_64" in event
    # kx msr: LSTAR is entry_SYSCALL_64's address in System.map (nokaslr).
    msr = out[out.index("(gdb) kx msr"):out.index("(gdb) kx tss")]
    lstar = re.search(r"IA32_LSTAR\s+(0x[0-9a-f]+)", msr)
    assert lstar and int(lstar.group(1), 16) == symbols["entry_SYSCALL_64"], msr
    # pt_regs in ksys_write carry the marker write's arguments.
    regs = out[out.index("(gdb) kx regs"):out.index("(gdb) bt")]
    args = re.search(r"arguments: (.*)", regs)
    assert args and re.search(r"\br?di=0x1\b", args.group(1)) and re.search(r"\br?dx=0x8\b", args.group(1)), regs
    # bt ends in the user-mode frame; the trace prints its 20 events.
    bt = out[out.index("(gdb) bt"):out.index("(gdb) kx trace")]
    assert "user mode" in bt, bt
    assert "kx trace: 20 events" in out
    assert "detached; the workload runs on" in out
