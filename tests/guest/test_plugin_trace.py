"""kx trace --engine plugin: the kxtrace TCG plugin in QEMU 10.0.2.

Ground truth as in test_trace.py: the workload's KX-SEQ order, its pid, the
fd it prints, the seed programs' own symbols; QEMU's monitor for the
registers and the kernel text.  The guest runs the back-to-back getpid
spinner too (kxmode=spin) on 2 vCPUs, with small rings, so that an
unfiltered trace overflows them for certain.
"""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import KERNELS
from tests.guestlib import GuestSession, LabConfig

from .test_break import console_since
from .test_rsp_loop import assert_gdb_view_exact, assert_no_breakpoint_left, command_interrupted
from .test_tasks import HELLO32_LEN, elf_symbols, workload_pid
from .test_trace import SYSENTER32_MSG, json_lines, kx_seq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RING_KB = 512      # per vCPU: about 1200 getpid records, which the spinner makes in ~10 ms
# The plugin's trace points are each kernel's C entry points, which differ
# (5.10's do_syscall_64(nr, regs), int80_emulation from 6.1.66/6.7): these
# tests run on every kernel under test, the rest on the full ones.
every_kernel = pytest.mark.every_kernel


@pytest.fixture(scope="module", params=KERNELS)
def plab(request):
    config = LabConfig(kernel=request.param, smp=2, cpu="Haswell", pti="on", workload="spin",
                       trace_plugin=True, plugin_ring_kb=RING_KB)
    session = GuestSession.get(config)
    yield session
    GuestSession.release(config)


@pytest.fixture
def pk(plab):
    plab.ensure_stopped()
    yield plab
    plab.cleanup_after_test()


def trace(kx, command, timeout=120):
    """The plugin engine runs synchronously (like the loop): the command
    returns with its events and summary."""
    return kx.gdb.cmd(command, timeout=timeout)


def summary_of(text):
    return json_lines(text)[-1]["summary"]


@every_kernel
def test_events_follow_the_workload_order(pk):
    pid = workload_pid(pk)
    cycle = [n for n in kx_seq(pk) if n not in (39, 1)]
    n = 12
    lines = json_lines(trace(pk, f"kx trace {' '.join(map(str, cycle))} --pid {pid} --count {n} --json"))
    events, summary = lines[:-1], lines[-1]["summary"]
    assert summary["engine"] == "plugin", "set kx trace-plugin makes it the default engine"
    assert len(events) == n and summary["events"] == n and summary["dropped"] == 0
    nrs = [e["nr"] for e in events]
    start = cycle.index(nrs[0])
    assert nrs == [cycle[(start + i) % len(cycle)] for i in range(n)]
    assert all(e["pid"] == pid and e["comm"] == "kxwork" and e["entry"] == "entry_SYSCALL_64" for e in events)
    opens = [e for e in events if e["nr"] == 257]
    assert opens and all(e["args"][1]["decoded"] == '"/etc/kx-target"' for e in opens)
    assert all(e["ret"] == -38 for e in events if e["nr"] == 1000)
    assert "No breakpoints" in pk.cmd("info breakpoints")


@every_kernel
def test_write_buffers_and_return_values(pk, tmp_path):
    out = tmp_path / "trace.jsonl"
    text = trace(pk, f"kx trace openat close write --comm kxwork --return --count 9 --out {out}")
    assert "kx trace: 9 events" in text
    events = json_lines(out.read_text())
    fd = int(re.findall(r"fd=(\d+)", pk.guest.serial())[-1])
    for e in events:
        if e["name"] == "openat":
            assert e["ret"] == fd
        elif e["name"] == "close":
            assert e["args"][0]["value"] == fd and e["ret"] == 0
        else:
            assert e["name"] == "write" and e["ret"] == e["args"][2]["value"]
    marks = [e for e in events if e["name"] == "write" and e["args"][1]["decoded"] == '"KX-MARK\\n"']
    assert marks, [e["args"][1]["decoded"] for e in events if e["name"] == "write"]
    assert pk.heartbeat_continues()


@every_kernel
def test_int80_write_with_its_return_value(pk):
    sym = elf_symbols("hello32")
    lines = json_lines(trace(pk, "kx trace write --abi 32 --comm hello32 --return --count 1 --json"))
    (e,), summary = lines[:-1], lines[-1]["summary"]
    assert (e["abi"], e["nr"], e["name"], e["comm"]) == ("32", 4, "write", "hello32")
    assert [(a["reg"], a["value"]) for a in e["args"]] == [("ebx", 1), ("ecx", sym["msg"]), ("edx", HELLO32_LEN)]
    assert e["args"][1]["decoded"] == '"Hello from int $0x80 (32-bit)\\n"'
    assert e["ret"] == HELLO32_LEN and e["handler"]["symbol"] == "__ia32_sys_write"
    assert summary["events"] == 1 and summary["engine"] == "plugin"


@every_kernel
def test_sysenter_once_per_call(pk):
    sym = elf_symbols("sysenter32")
    lines = json_lines(trace(pk, "kx trace write --abi 32 --comm sysenter32 --count 3 --json"))
    events = lines[:-1]
    assert len(events) == 3 and len({e["pid"] for e in events}) == 3
    for e in events:
        assert (e["abi"], e["nr"], e["name"], e["entry"]) == ("32", 4, "write", "entry_SYSENTER_compat")
        assert [(a["reg"], a["value"]) for a in e["args"]] == [("ebx", 1), ("ecx", sym["msg"]),
                                                              ("edx", len(SYSENTER32_MSG))]
        assert e["args"][1]["decoded"] == '"Hello from __kernel_vsyscall (32-bit)\\n"'


def test_both_vcpus_and_the_spinner(pk, tmp_path):
    """Each vCPU has its own ring: the spinner's calls and the workload's
    (which the scheduler keeps apart on 2 vCPUs) come through both, and
    both ABIs come through one trace."""
    spinner = int(re.findall(r"KX-SPIN pid=(\d+)", pk.guest.serial())[-1])
    spins = json_lines(trace(pk, f"kx trace getpid --pid {spinner} --count 50 --json"))[:-1]
    assert len(spins) == 50 and all(e["comm"] == "kxspin" for e in spins)
    out = tmp_path / "work.jsonl"
    text = trace(pk, f"kx trace write openat close --abi all --count 80 --out {out}")
    assert "kx trace: 80 events" in text
    work = json_lines(out.read_text())
    assert {e["abi"] for e in work} == {"64", "32"}
    # The scheduler may keep both tasks on one vCPU for a while (seen once
    # in a whole run): trace on until each vCPU's ring has delivered.
    cpus = {e["cpu"] for e in spins + work}
    for _ in range(5):
        if cpus == {0, 1}:
            break
        cpus |= {e["cpu"] for e in json_lines(trace(pk, "kx trace --abi all --count 400 --json"))[:-1]}
    assert cpus == {0, 1}


START_KERNEL_MAP = 0xFFFFFFFF80000000   # arch/x86/include/asm/page_64_types.h (nokaslr: phys_base 0)


def kernel_text(kx, names):
    """The first bytes of the trace points, read by QEMU's monitor from
    physical memory (the monitor's vCPU may be on a user CR3 under KPTI)."""
    out = {}
    for name in names:
        text = kx.guest.hmp(f"xp /2gx {kx.symbols[name] - START_KERNEL_MAP:#x}")
        out[name] = re.findall(r"0x[0-9a-f]{16}", text.split(":", 1)[-1])
        assert len(out[name]) == 2, text
    return out


def test_ctrl_c_leaves_the_guest_as_it_was(pk, tmp_path):
    """A real SIGINT mid-trace: the summary comes at once, gdb's registers
    are QEMU's, the kernel text is unchanged, no breakpoint is left."""
    points = [n for n in ("do_syscall_64", "int80_emulation", "do_fast_syscall_32") if n in pk.symbols]
    before = kernel_text(pk, points)
    # The SIGINT must land once the trace runs: arming the plugin and its
    # capture table takes seconds on a loaded 2-core host, so it is sent
    # once QEMU's monitor says the guest runs (kx resumes it only then).
    reply, took = command_interrupted(pk, f"kx trace --abi all --return --out {tmp_path / 'x'}", after=1.0,
                                      ready=lambda: "running" in pk.guest.hmp("info status"))
    assert "Traceback" not in reply
    m = re.search(r"kx trace: (\d+) events", reply)
    assert m and int(m.group(1)) > 0 and "ended: interrupted" in reply, reply[-800:]
    assert took < 5, f"{took:.1f} s from SIGINT to the summary"
    assert_gdb_view_exact(pk)
    assert kernel_text(pk, points) == before
    assert "No breakpoints" in pk.cmd("info breakpoints")
    assert_no_breakpoint_left(pk)
    assert pk.heartbeat_continues()


def test_a_full_ring_is_counted_not_waited_for(pk, tmp_path):
    """Full decoding of every call cannot keep up with the spinner, and the
    rings hold RING_KB KiB: the plugin drops and counts, the guest runs
    on, and the summary says how many."""
    text = trace(pk, f"kx trace --count 20000 --out {tmp_path / 'y'}")
    m = re.search(r"dropped: (\d+) records", text)
    assert m and int(m.group(1)) > 0, text[-600:]
    assert "kx trace: 20000 events" in text
    assert pk.heartbeat_continues()


def spinner_stretches(events, printed_calls):
    """[(calls the spinner made, its getpid events seen)] between each two
    of its KX-SPIN-RATE writes in `events` (printed_calls: {line: calls}
    from the console, for the lines whose writes the trace lost)."""
    out, prev, seen = [], None, 0
    for e in events:
        if e["name"] == "getpid":
            seen += 1
            continue
        m = re.search(r"KX-SPIN-RATE calls=\d+ ns=\d+ line=(\d+)", e["args"][1]["decoded"] or "")
        if e["name"] != "write" or not m:
            continue
        line = int(m.group(1))
        if prev is not None:
            out.append((sum(printed_calls[k] for k in range(prev + 1, line + 1)), seen))
        prev, seen = line, 0
    return out


@pytest.mark.parametrize("mode", ["record", "live"])
def test_an_overflow_loses_nothing_it_does_not_count(pk, tmp_path, mode):
    """The spinner prints how many getpid it made since its last line.
    Between two such writes, every call it made is in the trace or among
    the records the plugin counted as dropped (or, live, those left
    undecoded after the Ctrl-C).  --record keeps up with the spinner (then
    nothing may be missing); live decoding cannot, and the small rings
    overflow."""
    spinner = int(re.findall(r"KX-SPIN pid=(\d+)", pk.guest.serial())[-1])
    rec, decoded = tmp_path / "spin.kxr", tmp_path / "spin.jsonl"
    command = (f"kx trace getpid write --record {rec}" if mode == "record"
               else f"kx trace getpid write --pid {spinner} --out {decoded}")
    reply, _ = command_interrupted(pk, command, after=4.5, ready=lambda: "running" in pk.guest.hmp("info status"))
    counted = sum(int(n) for n in re.findall(r"(?:dropped|undecoded): (\d+) records", reply))
    if mode == "record":
        # A file: 400k events through gdb's console would take minutes.
        trace(pk, f"kx trace --replay {rec} --pid {spinner} --out {decoded}", timeout=600)
    else:
        assert "dropped:" in reply, reply[-600:]
    printed = {int(line): int(calls) for calls, line in
               re.findall(r"KX-SPIN-RATE calls=(\d+) ns=\d+ line=(\d+)", pk.guest.serial())}
    with open(decoded) as lines:
        stretches = spinner_stretches((json.loads(line) for line in lines), printed)
    assert stretches, reply[-400:]
    assert all(seen <= printed for printed, seen in stretches), stretches
    assert sum(printed - seen for printed, seen in stretches) <= counted, (stretches, reply[-400:])


def test_record_then_replay(pk, tmp_path):
    rec = tmp_path / "t.kxr"
    text = trace(pk, f"kx trace openat close --return --count 40 --record {rec}")
    m = re.search(r"recorded: (\d+) records", text)
    assert m and int(m.group(1)) >= 40, text
    lines = json_lines(trace(pk, f"kx trace --replay {rec} --comm kxwork --return --json"))
    events, summary = lines[:-1], lines[-1]["summary"]
    assert summary["engine"] == "replay" and summary["records"] >= 40
    fd = int(re.findall(r"fd=(\d+)", pk.guest.serial())[-1])
    assert events and all(e["ret"] == (fd if e["name"] == "openat" else 0) for e in events)
    err = pk.gdb.cmd_full(f"kx trace --replay {rec} --record {tmp_path / 'z'}")["error"]
    assert "exclude each other" in err


def test_qemu_7_2_refuses_the_plugin(tmp_path):
    lab = [sys.executable, os.path.join(ROOT, "scripts", "lab")]
    env = {**os.environ, "KX_QEMU": "7.2"}
    p = subprocess.run(lab + ["qemu-args", "--trace-plugin", str(tmp_path / "s")], env=env,
                       capture_output=True, text=True)
    assert p.returncode != 0 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot load the kxtrace plugin" in lines[0] and "KX_QEMU=10.0" in lines[0]


def test_lab_prints_the_qemu_prefix(tmp_path):
    """`lab qemu-args --trace-plugin S`: QEMU 10.0.2, both firmware
    directories (seabios first), the plugin with its socket."""
    sock = tmp_path / "kx.sock"
    env = {k: v for k, v in os.environ.items() if k != "KX_QEMU"}
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "lab"), "qemu-args",
                        "--trace-plugin", str(sock)], env=env, capture_output=True, text=True, check=True)
    argv = shlex.split(p.stdout)
    assert argv[0].endswith("usr/bin/qemu-system-x86_64") and "10.0.2" in argv[0]
    dirs = [argv[i + 1] for i, w in enumerate(argv) if w == "-L"]
    assert [d.rsplit("/", 1)[-1] for d in dirs] == ["seabios", "qemu"]
    plugin = argv[argv.index("-plugin") + 1]
    assert plugin.endswith(f",sock={sock}") and os.path.exists(plugin.split(",")[0])
    version = subprocess.run([argv[0], "-version"], capture_output=True, text=True).stdout
    assert "version 10.0.2" in version


def test_one_kx_at_a_time(pk):
    from gdbext.machine import plugin_client as pc
    first = pc.PluginClient(pk.guest.opts.plugin)
    try:
        with pytest.raises(pc.PluginError, match="one kx at a time"):
            pc.PluginClient(pk.guest.opts.plugin, timeout=1.0)
    finally:
        first.close()


def test_without_the_plugin_kx_says_so(kx):
    kx.cmd("set kx trace-plugin")
    r = kx.gdb.cmd_full("kx trace --engine plugin --count 1")
    assert r["error"] and "set kx trace-plugin SOCKET" in r["error"]
    kx.cmd("set kx trace-plugin /nonexistent/kxtrace.sock")
    try:
        r = kx.gdb.cmd_full("kx trace --engine plugin --count 1")
        assert r["error"] and "cannot reach the kxtrace plugin" in r["error"]
        assert "needs the plugin engine" in kx.gdb.cmd_full("kx trace --record /tmp/x --engine loop")["error"]
    finally:
        kx.cmd("set kx trace-plugin")


def py_json(kx, expr):
    out = kx.gdb.cmd(f"python import json; from gdbext import api; print(json.dumps({expr}))", timeout=180)
    return json.loads(out.strip().splitlines()[-1])


def test_scripts_hooks_run_on_the_plugin(pk):
    """gdbext.api.run() takes the plugin engine when it is set up: a return
    hook sees the fd the workload prints and ends the run; nothing is left
    in the guest and gdb's view is exact afterwards."""
    pid = workload_pid(pk)
    pk.cmd("python from gdbext import api; seen = []; h = api.on_syscall('openat', pid=%d, returns=True)"
           "(lambda ev: seen.append([ev.ret, ev.pid, ev.comm]) or True)" % pid)
    try:
        r = py_json(pk, "api.run(seconds=90).to_dict()")
        seen = py_json(pk, "seen")
    finally:
        pk.cmd("python h.remove()")
    assert r["engine"] == "plugin" and r["reason"] == "callback" and r["events"] >= 1, r
    fd = int(re.findall(r"fd=(\d+)", pk.guest.serial())[-1])
    assert seen[0] == [fd, pid, "kxwork"] and len(seen) == 1, seen
    assert "No breakpoints" in pk.cmd("info breakpoints")
    assert_no_breakpoint_left(pk)
    assert_gdb_view_exact(pk)


def test_a_raising_hook_on_the_plugin_is_counted_and_the_run_goes_on(pk):
    pk.cmd("python from gdbext import api; h = api.on_syscall('nanosleep', comm='kxwork')(lambda ev: [][1])")
    mark = len(pk.gdb.transcript)
    try:
        r = py_json(pk, "api.run(seconds=4).to_dict()")
    finally:
        pk.cmd("python h.remove()")
    assert r["engine"] == "plugin" and r["reason"] == "time" and r["events"] >= 1, r
    assert r["hook_errors"] == r["events"]
    printed = console_since(pk, mark)
    lines = [l for l in printed.splitlines() if "on_syscall hook" in l]
    assert len(lines) == r["events"] and all("raised IndexError" in l for l in lines)
    assert "Traceback" not in printed
    assert pk.heartbeat_continues()


def test_register_handles_are_gdb_numbers_plus_one(pk):
    """The plugin reads registers by the handles QEMU gave in vcpu_init:
    gdb's remote register number + 1 (QEMU 10's plugins/api.c)."""
    from gdbext.machine import plugin_client as pc
    client = pc.PluginClient(pk.guest.opts.plugin)
    try:
        handles = {k: int(v) for k, v in (w.split("=", 1) for w in client.command("regnames").split())}
    finally:
        client.close()
    remote = {}
    for line in pk.cmd("maint print remote-registers").splitlines():
        f = line.split()
        if len(f) == 8 and f[6].isdigit():
            remote[f[0]] = int(f[6])
    for name in ("rdi", "rsi", "rsp", "cs"):
        assert handles[name] == remote[name] + 1, (name, handles[name], remote[name])


@pytest.mark.parametrize("series", KERNELS)
def test_kaslr_guest(series, tmp_path):
    """With KASLR the plugin gets the slid addresses: kx sends them only
    once it knows the slide (its stop hook relocates the vmlinux)."""
    config = LabConfig(kernel=series, smp=2, cpu="Haswell", pti="on", kaslr=True, trace_plugin=True)
    s = GuestSession.get(config)
    try:
        slide = s.json("kx kaslr")["text_slide"]
        pid = workload_pid(s)
        lines = json_lines(trace(s, f"kx trace openat --pid {pid} --return --count 2 --json"))
        events, summary = lines[:-1], lines[-1]["summary"]
        assert summary["engine"] == "plugin" and len(events) == 2
        fd = int(re.findall(r"fd=(\d+)", s.guest.serial())[-1])
        for e in events:
            assert e["args"][1]["decoded"] == '"/etc/kx-target"' and e["ret"] == fd
            assert e["handler"]["address"] == s.symbols["__x64_sys_openat"] + slide
    finally:
        GuestSession.release(config)
