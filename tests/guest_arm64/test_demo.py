"""`./scripts/lab demo --arch arm64`: hello64's `svc #0` write caught at
el0t_64_sync and walked to invoke_syscall and sys_call_table[64].

Ground truth: System.map of the 6.1 arm64 kernel (nokaslr: the handler's
address), hello64's own call (x8 = 64, write(1, msg, 23)), and gdb's own read
of sys_call_table[64] in the demo's output.
"""
import re

from kxlab import kernels
from tests.guestlib import output_section as section, run_lab


def test_demo_walks_svc_to_the_table():
    out = "".join(run_lab("demo", "--arch", "arm64"))
    handler = kernels.cached("6.1", arch="arm64").symbols()["__arm64_sys_write"]
    event = section(out, "(gdb) kx event", "(gdb) kx vectors")
    assert "el0t_64_sync" in event and re.search(r"write\s+nr 64 \(x8\)", event), event
    assert '"Hello from svc (arm64)\\n"' in event and re.search(r"\bcount\s+23\b", event), event
    table = section(out, "(gdb) kx syscalls --abi 64 64", "(gdb) info symbol")
    assert f"{handler:#018x}  __arm64_sys_write" in table, table
    gdb_read = section(out, "(gdb) info symbol", "(gdb) kx event")
    assert gdb_read.splitlines()[1].startswith("__arm64_sys_write in section .text"), gdb_read
    assert "kx trace: 20 events" in out and "detached; the workload runs on" in out
