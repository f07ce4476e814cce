"""gdbext.api, its syscall hooks, the examples of scripts/examples/ and kx drgn,
on a KASLR guest of each kernel series (the lab guest plus `kaslr`).

Ground truth: the workload's KX-* lines and the seed programs' output on
the serial console (its pid, the fd of its openat, one heartbeat per round,
one "Hello from syscall" per hello64 run), the seed binaries' ELF entry
points, System.map slid by the slide the IDT gives (test_kaslr.true_slide),
gdb's own view of the kernel's per-cpu data, and gdb's breakpoint list.
"""
import json
import re

import pytest

from .test_break import console_since
from .test_kaslr import true_slide
from .test_rsp_loop import assert_no_breakpoint_left
from .test_tasks import elf_symbols, workload_pid

EXAMPLES = "scripts/examples"


@pytest.fixture
def kk(kaslr_lab):
    kaslr_lab.ensure_stopped()
    yield kaslr_lab
    kaslr_lab.cleanup_after_test()
    kaslr_lab.cmd("python from gdbext.kernel import syscall_hooks; syscall_hooks.remove_all()")


def slid(kx, name):
    return kx.symbols[name] + true_slide(kx)


def py_json(kx, expr):
    """An expression evaluated by gdb's Python with `api` imported, as JSON."""
    out = kx.cmd(f"python import json; from gdbext import api; print(json.dumps({expr}))")
    return json.loads(out.strip().splitlines()[-1])


def run_example(kx, name, *argv, timeout=600):
    kx.cmd(f"python import sys; sys.argv = {[name, *argv]!r}")
    return kx.gdb.cmd(f"source {EXAMPLES}/{name}.py", timeout=timeout)


# -- the API is what the commands print ---------------------------------------
@pytest.mark.parametrize("api_call, command", [
    # (the workload by pid: a child it forked keeps its comm until execve)
    ("api.tasks()", "kx ps"), ("api.current()", "kx task"), ("api.task(PID)", "kx task PID"),
    ("api.tss(1)", "kx tss --cpu 1"), ("api.syscalls('32')", "kx syscalls --abi 32"),
    ("api.syscall('openat')", None),
])
def test_api_objects_are_the_commands_json(kk, api_call, command):
    pid = str(workload_pid(kk))
    api_call, command = api_call.replace("PID", pid), command and command.replace("PID", pid)
    got = py_json(kk, f"{api_call}.to_dict()")
    if command is None:   # one syscall: its row of `kx syscalls NAME` plus the signature
        row = kk.json("kx syscalls openat")
        assert {k: v for k, v in got.items() if k in row["entries"][0]} == row["entries"][0]
        assert got["signature"] == row["signature"] and got["nr"] == 257
        return
    assert got == kk.json(command)


def test_api_at_a_syscall_event_and_regs(kk):
    kk.run_to("do_syscall_64", condition="$rsi == 257")
    # kx event adds the task's seccomp verdict (commands/seccomp.py) to the event.
    event = kk.json("kx event")
    assert py_json(kk, "api.event().to_dict()") == {k: v for k, v in event.items() if k != "seccomp"}
    assert py_json(kk, "api.pt_regs().to_dict()") == kk.json("kx regs")
    ev = py_json(kk, "[api.event().arg('filename').string, api.event().name]")
    assert ev == [re.search(r"target=(\S+)", kk.guest.serial()).group(1), "openat"]
    # The vCPU in do_syscall_64 can execute an injected rdmsr (an idle one in hlt cannot).
    msrs = py_json(kk, "api.msrs(None, ['LSTAR']).to_dict()")
    assert msrs["msrs"][0]["value"] == slid(kk, "entry_SYSCALL_64") and msrs["msrs"][0]["ok"] is True


# -- hooks on gdb breakpoints ------------------------------------------------------
def test_a_hook_stops_at_its_entry_and_remove_cleans_up(kk):
    kk.cmd("python from gdbext import api; h = api.on_syscall('openat', comm='kxwork')(lambda ev: True)")
    assert f"{slid(kk, 'entry_SYSCALL_64'):#018x}" in kk.cmd("info breakpoints")
    kk.cont()
    kk.wait_stopped(120)
    assert kk.reg("pc") == slid(kk, "entry_SYSCALL_64") and kk.reg("rax") == 257
    ev = kk.json("kx event")
    assert (ev["name"], ev["pid"], ev["comm"]) == ("openat", workload_pid(kk), "kxwork")
    kk.cmd("python h.remove()")
    assert "No breakpoints" in kk.cmd("info breakpoints")
    assert_no_breakpoint_left(kk)


def test_a_return_hook_sees_the_fd_the_workload_prints(kk):
    kk.cmd("python from gdbext import api; seen = []; "
           "h = api.on_syscall('openat', pid=%d, returns=True)(lambda ev: seen.append(ev.ret) or True)"
           % workload_pid(kk))
    kk.cont()
    kk.wait_stopped(120)
    fd = py_json(kk, "seen")[-1]
    kk.cmd("python h.remove()")
    assert kk.heartbeat_continues(60)
    assert fd == int(re.findall(r"fd=(\d+)", kk.guest.serial())[-1])


def test_a_raising_callback_is_one_line_and_never_stops_the_guest(kk):
    """Every getpid of kxwork raises in the callback: the guest must run its
    rounds on, each error a single line, and a Ctrl-C (not a breakpoint)
    must be what stops it."""
    kk.cmd("python from gdbext import api; h = api.on_syscall('getpid', comm='kxwork')(lambda ev: 1 // 0)")
    mark = len(kk.gdb.transcript)
    start = len(kk.guest.serial())
    kk.cont()
    kk.guest.wait_for(r"KX-HEARTBEAT", timeout=120, after=start)
    rec = kk.gdb.interrupt()
    kk.running = False
    assert 'signal-name="SIGINT"' in rec, rec
    printed = console_since(kk, mark)
    errors = [l for l in printed.splitlines() if "on_syscall hook" in l]
    assert errors and all("raised ZeroDivisionError: integer division or modulo by zero" in l for l in errors)
    assert "Traceback" not in printed
    assert py_json(kk, "[h.calls, h.errors]") == [len(errors)] * 2
    kk.cmd("python h.remove()")
    assert "No breakpoints" in kk.cmd("info breakpoints")


def test_run_on_the_loop_reports_a_raising_hook(kk):
    kk.cmd("python from gdbext import api; h = api.on_syscall('nanosleep')(lambda ev: [][1])")
    r = py_json(kk, "api.run(seconds=3).to_dict()")
    assert r["engine"] == "loop" and r["reason"] == "time" and r["events"] >= 1
    assert r["hook_errors"] == r["events"]
    kk.cmd("python h.remove()")
    assert_no_breakpoint_left(kk)


# -- the examples ------------------------------------------------------------------
def heartbeats(text):
    return len(re.findall(r"KX-HEARTBEAT", text))


def test_example_openat_paths(kk):
    pid = workload_pid(kk)
    start = len(kk.guest.serial())
    # Every syscall is a debug stop for the loop (the filter is applied in
    # kx): a round can take seconds on a loaded host, so the window is long.
    out = run_example(kk, "openat_paths", str(pid), "--seconds", "12")
    window = kk.guest.serial()[start:]
    lines = re.findall(r'^(\d+) (\S+) openat\("([^"]*)"\) = (-?\d+)$', out, re.M)
    target = re.search(r"target=(\S+)", kk.guest.serial()).group(1)
    fd = int(re.findall(r"fd=(\d+)", kk.guest.serial())[-1])
    assert lines and all(l == (str(pid), "kxwork", target, str(fd)) for l in lines), out
    # An edge round may have its openat in the window and its heartbeat not, or the reverse.
    assert abs(len(lines) - heartbeats(window)) <= 2
    assert f"openat_paths: {len(lines)} openat calls by pid {pid}" in out
    assert_no_breakpoint_left(kk)


def test_example_stop_at_execve(kk):
    out = run_example(kk, "stop_at_execve", "hello64", "--seconds", "300")
    m = re.search(r'stopped on CPU (\d+): pid (\d+) is now "hello64" \(execve returned 0\); it starts at (0x[0-9a-f]+)',
                  out)
    assert m, out
    task = kk.json("kx task")
    assert (task["comm"], task["pid"], task["running_on"]) == ("hello64", int(m.group(2)), int(m.group(1)))
    entry = elf_symbols("hello64")["_start"]
    assert int(m.group(3), 16) == entry and kk.json("kx regs")["regs"]["ip"] == entry
    # Stopped where entry_SYSCALL_64 has come back from do_syscall_64.
    pc = kk.reg("pc")
    assert slid(kk, "entry_SYSCALL_64") < pc < slid(kk, "entry_SYSCALL_64") + 0x200
    assert "No breakpoints" in kk.cmd("info breakpoints")
    assert "no execve of 'nosuch'" in run_example(kk, "stop_at_execve", "nosuch", "--seconds", "3")


def test_example_syscalls_per_comm(kk):
    start = len(kk.guest.serial())
    out = run_example(kk, "syscalls_per_comm", "--seconds", "8", "--abi", "all", "--json")
    window = kk.guest.serial()[start:]
    data = json.loads(out.strip().splitlines()[-1])
    comms = data["comms"]
    assert data["events"] == sum(c["calls"] for c in comms.values()) > 0
    work = comms["kxwork"]["syscalls"]
    rounds = heartbeats(window)
    assert rounds >= 1 and abs(work.get("openat", 0) - rounds) <= 2
    assert abs(work.get("nr 1000", 0) - rounds) <= 2        # the invalid call: no name
    for comm, text in (("hello64", "Hello from syscall (64-bit)"), ("hello32", "Hello from int $0x80")):
        assert abs(comms.get(comm, {"syscalls": {}})["syscalls"].get("write", 0) - window.count(text)) <= 2
    table = run_example(kk, "syscalls_per_comm", "--seconds", "2")
    assert table.splitlines()[0].split() == ["COMM", "CALLS", "/s", "TOP", "SYSCALLS"]


# -- drgn -----------------------------------------------------------------------
def drgn(kx, code):
    d = kx.json(f'kx drgn -c "{code}"')
    assert "error" not in d, d
    return d["result"]


def test_drgn_for_each_task_is_kx_ps(kk):
    tasks = drgn(kk, "sorted([t.pid.value_(), t.comm.string_().decode(), t.value_()] for t in for_each_task(prog))")
    ps = kk.json("kx ps")["tasks"]
    # drgn walks init_task's list, which holds no idle task (pid 0).
    assert tasks == sorted([t["pid"], t["comm"], t["address"]] for t in ps if t["pid"] != 0)
    assert len(tasks) > 20


def test_drgn_runqueue_curr_is_kx_current(kk):
    # A stop can land inside a context switch, between rq->curr and the
    # per-cpu current_task changing (kernel/sched/core.c __schedule): then
    # the guest runs on to another stop, three times at most.
    for attempt in range(3):
        pairs = [(drgn(kk, f"per_cpu(prog['runqueues'], {cpu}).curr.value_()"),
                  kk.gdb.eval(f"(unsigned long)$kx_current({cpu})")) for cpu in (0, 1)]
        if all(a == b for a, b in pairs) or attempt == 2:
            break
        assert kk.heartbeat_continues(60)
    assert all(a == b for a, b in pairs), pairs
    # drgn found the KASLR offset itself, in the kernel's vmcoreinfo.
    assert drgn(kk, "prog.symbol('_text').address") == slid(kk, "_text")


def test_drgn_reads_again_after_the_guest_ran(kk):
    before = drgn(kk, "prog['jiffies'].value_()")
    assert kk.heartbeat_continues(60)
    assert drgn(kk, "prog['jiffies'].value_()") > before


def test_kx_drgn_errors_and_scripts(kk, tmp_path):
    assert "ZeroDivisionError" in kk.json('kx drgn -c "1/0"')["error"]
    script = tmp_path / "count.py"
    script.write_text("import sys\nprint('TASKS', len(list(for_each_task(prog))), sys.argv[1:])\n")
    assert re.search(r"TASKS \d+ \['a', 'b'\]", kk.cmd(f"kx drgn {script} a b"))
    assert "no script" in kk.json("kx drgn /nonexistent.py")["error"]
    kk.cmd("python import sys; _drgn_module = sys.modules['drgn']; sys.modules['drgn'] = None")
    try:
        err = kk.json('kx drgn -c "1"')["error"]
    finally:
        kk.cmd("python sys.modules['drgn'] = _drgn_module")
    assert err == "drgn is not installed: pip install '.[drgn]' (or ./scripts/lab bootstrap --with-drgn)"
