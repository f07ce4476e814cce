"""At the first instruction of entry_SYSCALL_64 (KPTI: the user page table,
the user RSP, before swapgs): `bt` ends in the user frame built from the
live registers, and the current task is readable through kx.

Ground truth: hello64's own registers and ELF symbols (rdi=1, rdx=28,
`hello64_after_write` follows its `syscall`), and the same task read later
in C, where gdb itself can dereference it.
"""
import re

from tests.guest.test_tasks import HELLO64_LEN, elf_symbols, frames, gdb_value


def _at_hello64_entry(kx):
    kx.run_to("entry_SYSCALL_64", condition=f"$rax == 1 && $rdx == {HELLO64_LEN} && $rdi == 1")
    assert kx.gdb.eval("$pc") == kx.symbols["entry_SYSCALL_64"]


def test_bt_at_the_entry_ends_in_the_live_user_frame(kx):
    _at_hello64_entry(kx)
    sym = elf_symbols("hello64")
    user_sp = kx.reg("rsp")
    bt = frames(kx.cmd("bt"))
    assert len(bt) == 2, bt
    assert "entry_SYSCALL_64" in bt[0]
    assert "[user mode, 64-bit: live registers" in bt[1]
    assert int(re.search(r"0x[0-9a-f]+", bt[1]).group(0), 16) == sym["hello64_after_write"]
    kx.cmd("frame 1")
    assert kx.gdb.eval("$pc") == sym["hello64_after_write"]
    assert kx.gdb.eval("$sp") == user_sp
    assert kx.gdb.eval("$rdi") == 1 and kx.gdb.eval("$rdx") == HELLO64_LEN
    assert kx.gdb.eval("$cs") == 0x33
    kx.cmd("frame 0")
    # Python's frame chain ends there too: no frames guessed from user memory.
    chain = kx.cmd('python f = gdb.newest_frame().older(); print(f.older() is None, hex(f.pc()))')
    assert chain.split() == ["True", hex(sym["hello64_after_write"])]


def test_current_task_at_the_entry(kx):
    _at_hello64_entry(kx)
    thread = kx.gdb.eval("$_thread")
    address = gdb_value(kx, "$kx_current()")
    # gdb reads `->` through the user page table, which has no task_struct.
    out = kx.gdb.cmd_full("print $kx_current()->comm")
    assert "Cannot access memory" in (out["error"] or "")
    comm = kx.cmd("print $kx_task_struct().comm")
    assert '"hello64' in comm
    assert '"hello64' in kx.cmd("print $kx_deref($kx_current()).comm")
    pid = gdb_value(kx, "$kx_task_struct().pid")
    assert gdb_value(kx, f"$kx_task_struct({pid}).stack") == gdb_value(kx, "$kx_task_struct().stack")
    kx.run_to("do_syscall_64", condition=f"$_thread == {thread}")
    assert gdb_value(kx, "$kx_current()") == address
    assert gdb_value(kx, "$kx_current()->pid") == pid
    assert '"hello64' in kx.cmd("print $kx_current()->comm")


def test_deref_rejects_bad_input(kx):
    kx.run_to("ksys_write")
    for expr, message in [("$kx_deref(1)", "must be a pointer"),
                          ("$kx_deref((void *)1)", "cast a void pointer"),
                          ("$kx_deref((long *)0)", "NULL"),
                          ("$kx_task_struct(99999)", "no task with pid 99999")]:
        out = kx.gdb.cmd_full(f"print {expr}")
        assert message in (out["error"] or ""), out
        assert "Traceback" not in out["output"] + out["log"]
