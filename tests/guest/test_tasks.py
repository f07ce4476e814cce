"""kx task / ps / regs, the $kx_* functions and the entry-frame unwinder.

Ground truth: the seed programs' own register values and ELF symbols
(hello64 sets rdi=1, rsi=msg, rdx=len, rax=1 before `syscall`; hello32 sets
eax=4, ebx=1, ecx=msg, edx=len before `int $0x80`), the pid the workload
prints on the serial console, and gdb's own reads of the kernel's per-cpu
variables.  The lab guest: 2 vCPUs, Haswell, pti=on.
"""
import ast
import re

import pytest
from elftools.elf.elffile import ELFFile

from kxlab import initramfs

USER_CS, USER_DS, USER32_CS = 0x33, 0x2B, 0x23
HELLO64_LEN, HELLO32_LEN = 28, 30


def elf_symbols(binary):
    with open(initramfs.binaries_dir() / binary, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}


def gdb_value(kx, expr):
    out = kx.cmd(f"output/x (unsigned long)({expr})")
    return int(out.strip().split()[-1], 16)


def workload_pid(kx):
    pids = re.findall(r"KX-WORK pid=(\d+)", kx.guest.serial())
    assert pids, "the workload never announced its pid"
    return int(pids[-1])


def stopped_cpu(kx):
    return kx.gdb.eval("$_thread") - 1


@pytest.fixture
def at_hello64_write(kx):
    """In ksys_write for the 64-bit seed's write(1, msg, 28)."""
    kx.run_to("ksys_write", condition=f"$rdx == {HELLO64_LEN}")
    return kx


@pytest.fixture
def at_hello32_write(kx):
    """In ksys_write for the 32-bit seed's int 0x80 write(1, msg, 30)."""
    kx.run_to("ksys_write", condition=f"$rdx == {HELLO32_LEN}")
    return kx


def test_regs_are_the_seed_programs_registers(at_hello64_write):
    kx = at_hello64_write
    sym = elf_symbols("hello64")
    d = kx.json("kx regs")
    r = d["regs"]
    assert d["mode"] == "64"
    assert (r["di"], r["si"], r["dx"]) == (1, sym["msg"], sym["len"]) == (1, sym["msg"], HELLO64_LEN)
    assert r["orig_ax"] == 1
    assert d["syscall"]["nr"] == 1 and d["syscall"]["name"] == "write"
    assert r["ip"] == sym["hello64_after_write"]
    assert (r["cs"], r["ss"]) == (USER_CS, USER_DS)
    # SYSCALL itself saved RIP in RCX and RFLAGS in R11 (SDM Vol.2B SYSCALL).
    assert r["cx"] == r["ip"] and r["r11"] == r["flags"]
    assert "IF" in d["rflags"]
    assert [a["reg"] for a in d["args"]] == ["rdi", "rsi", "rdx", "r10", "r8", "r9"]
    # The address is the one do_syscall_64 was handed (gdb's own DWARF view).
    kx.cmd("frame function do_syscall_64")
    assert d["address"] == gdb_value(kx, "regs")
    assert d["task"]["comm"] == "hello64"
    assert d["warnings"] == []


def test_regs_text_and_ptregs_function(at_hello64_write):
    kx = at_hello64_write
    text = kx.cmd("kx regs")
    assert "write (nr 1, 64-bit ABI)" in text and "orig_ax" in text
    d = kx.json("kx regs")
    assert gdb_value(kx, "$kx_ptregs()") == d["address"]
    assert gdb_value(kx, "$kx_ptregs()->orig_ax") == 1
    assert gdb_value(kx, "$kx_ptregs($kx_current())->di") == 1


def test_compat_regs_use_the_i386_abi(at_hello32_write):
    kx = at_hello32_write
    sym = elf_symbols("hello32")
    d = kx.json("kx regs")
    r = d["regs"]
    assert d["mode"] == "32" and (r["cs"], d["cs"]["mode"]) == (USER32_CS, "32")
    assert r["orig_ax"] == 4 and d["syscall"]["name"] == "write" and d["syscall"]["abi"] == "32"
    assert d["nr_reg"] == "eax"
    args = {a["reg"]: a["value"] for a in d["args"]}
    assert list(args) == ["ebx", "ecx", "edx", "esi", "edi", "ebp"]
    assert (args["ebx"], args["ecx"], args["edx"]) == (1, sym["msg"], HELLO32_LEN)
    assert r["ip"] == sym["hello32_after_write"]
    text = kx.cmd("kx regs")
    assert "32-bit compat" in text and "ebx" in text and "eip" in text


def frames(bt_text):
    return [l for l in bt_text.splitlines() if re.match(r"#\d+\s", l)]


def test_bt_ends_in_the_user_frame(at_hello64_write):
    kx = at_hello64_write
    sym = elf_symbols("hello64")
    bt = frames(kx.cmd("bt"))
    assert "ksys_write" in bt[0]
    assert any("entry_SYSCALL_64" in f for f in bt[:-1])
    last = bt[-1]
    assert int(re.search(r"0x[0-9a-f]+", last).group(0), 16) == sym["hello64_after_write"]
    assert "[user mode, 64-bit" in last
    # The user frame's registers are the ones user space had.
    n = re.match(r"#(\d+)", last).group(1)
    kx.cmd(f"frame {n}")
    assert kx.gdb.eval("$pc") == sym["hello64_after_write"]
    assert kx.gdb.eval("$rdi") == 1 and kx.gdb.eval("$rdx") == HELLO64_LEN
    assert kx.gdb.eval("$sp") == kx.json("kx regs")["regs"]["sp"]
    kx.cmd("frame 0")


def test_bt_compat_ends_in_the_user_frame(at_hello32_write):
    kx = at_hello32_write
    sym = elf_symbols("hello32")
    bt = frames(kx.cmd("bt"))
    assert int(re.search(r"0x[0-9a-f]+", bt[-1]).group(0), 16) == sym["hello32_after_write"]
    assert "32-bit compat" in bt[-1]


# One CLI line: the loop is exec()'d from a string with escaped newlines.
PC_CHAIN = (r'python exec("f = gdb.newest_frame()\npcs = []\n'
            r'while f is not None and len(pcs) < 64:\n pcs.append((f.pc(), f.name()))\n f = f.older()\n'
            r'print(repr(pcs))")')


def pc_chain(kx, thread):
    kx.cmd(f"thread {thread}")
    lines = kx.cmd(PC_CHAIN).strip().splitlines()
    return ast.literal_eval(lines[-1])  # [(pc, name or None)]


def test_unwinder_leaves_other_stacks_alone(kx):
    """gdb's own frames are untouched: with kx's unwinder on or off, every
    frame up to and including an entry stub is the same; kx only replaces
    what gdb found beyond the stub (a bogus 0x0 frame)."""
    chains = {}
    for state in ("enable", "disable"):
        kx.cmd(f"{state} unwinder global kx-entry-frames")
        chains[state] = [pc_chain(kx, t) for t in (1, 2)]
    kx.cmd("enable unwinder global kx-entry-frames")
    kx.cmd("thread 1")
    for with_kx, without in zip(chains["enable"], chains["disable"]):
        cut = next((i for i, (_, name) in enumerate(without)
                    if name and name.startswith(("entry_", "asm_"))), len(without) - 1)
        assert with_kx[:cut + 1] == without[:cut + 1]


def top_of_stack_padding(kx):
    """TOP_OF_KERNEL_STACK_PADDING (asm/thread_info.h): 16 bytes on x86-64
    with CONFIG_X86_FRED (6.9+; set in 7.2's config), else 0."""
    fred = re.search(r"^CONFIG_X86_FRED=y$", kx.kernel.config.read_text(), re.M)
    return 16 if fred else 0


def test_task_is_the_workload(kx):
    kx.run_to("__x64_sys_getpid")
    pid = workload_pid(kx)
    d = kx.json("kx task")
    assert (d["pid"], d["tgid"], d["comm"]) == (pid, pid, "kxwork")
    assert d["running_on"] == stopped_cpu(kx)
    assert d["state"].startswith("R")
    assert d["address"] == gdb_value(kx, "$kx_current()")
    assert d["stack"]["end_magic_ok"] is True
    assert d["stack"]["top"] - d["stack"]["base"] == 16384 - top_of_stack_padding(kx)
    assert d["thread_info"]["location"] == "task_struct"
    assert d["mm"] and d["mm"] == d["active_mm"]
    assert "PF_KTHREAD" not in d["flags"]["names"]
    # by pid and by comm: the same task
    assert kx.json(f"kx task {pid}")["address"] == d["address"]
    assert kx.json("kx task kxwork")["address"] == d["address"]
    assert kx.json(f"kx task {d['address']:#x}")["pid"] == pid
    # the kernel's own fields, read by gdb
    assert d["stack"]["base"] == gdb_value(kx, f"((struct task_struct *){d['address']:#x})->stack")
    assert d["thread"]["sp"] == gdb_value(kx, f"((struct task_struct *){d['address']:#x})->thread.sp")


def test_kernel_thread_and_idle(kx):
    kx.run_to("ksys_write")
    d = kx.json("kx task 2")
    assert d["comm"] == "kthreadd" and d["kernel_thread"] and d["mm"] is None
    assert "PF_KTHREAD" in d["flags"]["names"]
    idle = kx.json("kx task 0 --cpu 1")
    assert idle["comm"] == "swapper/1" and "PF_IDLE" in idle["flags"]["names"]
    assert idle["address"] == gdb_value(kx, "((struct rq *)((unsigned long)&runqueues + __per_cpu_offset[1]))->idle")


def test_current_matches_runqueues_on_every_cpu(kx):
    """$kx_current(cpu) == runqueues[cpu].curr, read by gdb itself.  The two
    differ for a few instructions inside a context switch on that CPU; then
    kx must say so, and the test takes another stop."""
    consistent = 0
    for _ in range(6):
        kx.run_to("ksys_write")
        rq = {c: gdb_value(kx, f"((struct rq *)((unsigned long)&runqueues + __per_cpu_offset[{c}]))->curr")
              for c in range(2)}
        cur = {c: gdb_value(kx, f"*(unsigned long *)((unsigned long)&{current_symbol(kx)} + __per_cpu_offset[{c}])")
               for c in range(2)}
        for c in range(2):
            assert gdb_value(kx, f"$kx_current({c})") == cur[c]
            if cur[c] != rq[c]:
                assert any("runqueues" in w for w in kx.json(f"kx task --cpu {c}")["warnings"])
        if cur == rq:
            consistent += 1
            for c in range(2):
                assert kx.json(f"kx task --cpu {c}")["address"] == rq[c]
            break
        kx.cmd("delete")
    assert consistent
    # $kx_per_cpu is &var + __per_cpu_offset[cpu], as gdb computes it
    assert gdb_value(kx, '&$kx_per_cpu("runqueues", 1)') == gdb_value(kx, "(unsigned long)&runqueues + __per_cpu_offset[1]")


def test_current_at_entry_does_not_trust_gs_base(kx):
    """At entry_SYSCALL_64's first instruction (before swapgs, user CR3) GS_BASE
    is still the user's; kx must find the same current as later in C."""
    kx.run_to("entry_SYSCALL_64")
    thread = kx.gdb.eval("$_thread")
    assert kx.reg("gs_base") != kx.reg("k_gs_base")
    at_entry = gdb_value(kx, "$kx_current()")
    pid_at_entry = kx.json("kx task")["pid"]
    kx.run_to("do_syscall_64", condition=f"$_thread == {thread}")
    cpu = thread - 1
    assert at_entry == gdb_value(kx, f"*(unsigned long *)((unsigned long)&{current_symbol(kx)} + __per_cpu_offset[{cpu}])")
    assert kx.json("kx task")["pid"] == pid_at_entry


def current_symbol(kx):
    # 6.2-6.14 keep current in pcpu_hot; the test needs gdb's own expression.
    return "pcpu_hot.current_task" if "pcpu_hot" in kx.symbols else "current_task"


def test_regs_warns_before_pt_regs_exist(kx):
    kx.run_to("entry_SYSCALL_64")
    d = kx.json("kx regs")
    assert any("before it calls into C" in w for w in d["warnings"])


def test_ps_lists_every_task(kx):
    kx.run_to("ksys_write")
    d = kx.json("kx ps")
    rows = d["tasks"]
    by_pid = {}
    for r in rows:
        assert set(r) >= {"address", "pid", "tgid", "comm", "state", "cpu"}
        by_pid.setdefault(r["pid"], []).append(r)
    # nr_threads counts every forked task; init_task and the other CPUs'
    # idle tasks were never forked (kernel/fork.c copy_process()).
    assert len(rows) == gdb_value(kx, "nr_threads") + 1 + (2 - 1)
    assert len(by_pid[0]) == 2 and all(len(v) == 1 for p, v in by_pid.items() if p)
    assert by_pid[1][0]["comm"] == "init"
    assert by_pid[workload_pid(kx)][0]["comm"] == "kxwork"
    running = {r["cpu"]: r["address"] for r in rows if r["cpu"] is not None}
    assert running[stopped_cpu(kx)] == gdb_value(kx, "$kx_current()")
    assert set(running) == {0, 1}
    text = kx.cmd("kx ps")
    assert "kxwork" in text and "[kthreadd]" in text


@pytest.mark.parametrize("command, message", [
    ("kx task 99999", "no task with pid 99999"),
    ("kx task no-such-comm", "no task named 'no-such-comm'"),
    ("kx task 0xffffffff81000000", "does not look like a task_struct"),
    ("kx task 0xffffffffffff0000", "cannot read memory"),
    ("kx task -3", "pid must be >= 0"),
    ("kx regs 2", "is a kernel thread"),
    ("kx regs 0", "is an idle task"),
    ("kx task --cpu 9", "no CPU 9"),
])
def test_bad_input_is_one_line(kx, command, message):
    kx.run_to("ksys_write")
    err = kx.json(command)
    assert message in err["error"]
    out = kx.gdb.cmd_full(command)
    assert out["error"] and message in out["error"], out
    assert "\n" not in out["error"].strip()
    assert "Traceback" not in out["output"] + out["log"] + out["error"]


def test_functions_reject_bad_input(kx):
    kx.run_to("ksys_write")
    for expr, message in [('$kx_per_cpu("no_such_var")', "no symbol `no_such_var`"),
                          ("$kx_current(9)", "no CPU 9"),
                          ("$kx_ptregs(2)", "kernel thread"),
                          ("$kx_per_cpu(3)", "NAME must be a string")]:
        out = kx.gdb.cmd_full(f"print {expr}")
        assert message in (out["error"] or ""), out
        assert "Traceback" not in out["output"] + out["log"]
