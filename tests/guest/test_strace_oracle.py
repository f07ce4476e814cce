"""kx trace against strace itself.

The guest (kxmode=strace) runs /bin/kxsys under Debian's strace every
round and prints strace's lines (KX-STRACE); kx traces the same calls of
the same process while that happens.  The lines are compared one by one,
modulo what differs from run to run or by design:
- addresses (hex numbers of five digits or more) and the pids of kxsys and
  its children;
- strace's column padding before ` = `;
- the error form: strace's `-1 ENOENT (No such file or directory)` and
  kx's `-2 ENOENT` are both `-ENOENT`.
At least 95% of strace's lines must have their twin in kx's; the figure
and every difference are printed.  Both engines are compared: the loop,
and the kxtrace plugin (QEMU 10), which prints what the loop prints but
for execve's argv/envp (arrays of pointers it cannot follow in a record).
The struct layouts kx decodes are checked against the kernel's DWARF.
"""
import difflib
import json
import os
import re
import signal
import time

import pytest

from tests.guestlib import GuestSession, LabConfig

from .conftest import OwnSession

SYSCALLS = ("execve getpid write openat ioctl close mmap mprotect munmap socket rt_sigaction "
            "rt_sigprocmask nanosleep clock_nanosleep clone clone3 wait4 exit_group")
MATCH_FLOOR = 0.95


@pytest.fixture(scope="module")
def oracle(kernel_series):
    session = OwnSession(kernel_series, append="kxmode=strace")
    yield session
    session.close()


@pytest.fixture(scope="module")
def plugin_oracle(kernel_series):
    config = LabConfig(kernel=kernel_series, workload="strace", trace_plugin=True)
    session = GuestSession.get(config)
    yield session
    GuestSession.release(config)


def strace_runs(serial: str):
    """[(pid, [strace's syscall lines])] of every complete kxsys run."""
    runs, lines = [], []
    for raw in serial.splitlines():
        if raw.startswith("KX-STRACE-END"):
            pid = next((int(m.group(1)) for l in lines for m in [re.match(r"getpid\(\)\s+= (\d+)$", l)] if m), None)
            runs.append((pid, lines))
            lines = []
        elif raw.startswith("KX-STRACE "):
            line = raw[len("KX-STRACE "):]
            if not line.startswith(("+++", "---")):
                lines.append(line)
    return runs


def normalize(line: str, pids) -> str:
    line = re.sub(r"\)\s+= ", ") = ", line)
    line = re.sub(r"= -1 (E[A-Z0-9]+) \(.*\)$", r"= -\1", line)
    line = re.sub(r"= -\d+ (E[A-Z0-9]+)$", r"= -\1", line)
    line = re.sub(r"0x[0-9a-f]{5,}", "ADDR", line)
    for pid in sorted(pids, key=lambda p: -len(str(p))):
        line = re.sub(rf"\b{pid}\b", "PID", line)
    return line


def trace_until_runs(kx, out_file, engine, runs_wanted=2, timeout=240):
    """`kx trace SYSCALLS --return --out FILE --engine E` while the guest completes
    `runs_wanted` more strace runs, then a real SIGINT ends it."""
    start = kx.guest.serial().count("KX-STRACE-END")
    gdb = kx.gdb
    token = gdb.send_console(f"kx trace {SYSCALLS} --return --out {out_file} --engine {engine} --json")
    kx.running = True
    deadline = time.monotonic() + timeout
    while kx.guest.serial().count("KX-STRACE-END") < start + runs_wanted:
        assert time.monotonic() < deadline, "the guest finished no strace run under the trace"
        time.sleep(1)
    os.kill(gdb.proc.pid, signal.SIGINT)
    reply = gdb._collect(token, 120)
    kx.running = False
    assert reply["result"][0] == "done", reply
    summaries = [json.loads(l)["summary"] for l in reply["output"].splitlines() if l.startswith('{"summary"')]
    assert summaries and summaries[-1]["engine"] == engine, reply["output"][-500:]
    print({k: v for k, v in summaries[-1].items() if k != "by_syscall"})
    with open(out_file) as f:
        return [json.loads(l) for l in f if l.startswith("{")]


def kx_lines_of(events, pid):
    """kx's lines of one kxsys process, from its execve on (before it, the
    same pid is strace's child getting ready)."""
    mine = [e for e in events if e["tgid"] == pid]
    first = next((i for i, e in enumerate(mine) if e["name"] == "execve"), None)
    assert first is not None, f"kx saw no execve of pid {pid}: {[e['line'] for e in mine]}"
    return [e["line"] for e in mine[first:]], mine[first:]


def compare_with_strace(kx, out_file, engine):
    """(figure, kx's events of the run, strace's lines, kx's lines, the
    differences) for the newest strace run of a process kx traced."""
    kx.ensure_stopped()
    events = trace_until_runs(kx, out_file, engine)
    # A run kx saw from its execve to its exit (the trace may begin in the
    # middle of one, and the plugin starts recording some time after the
    # command: armed_after_ms).
    finished = ({e["tgid"] for e in events if e["name"] == "exit_group"}
                & {e["tgid"] for e in events if e["name"] == "execve"})
    runs = [(pid, lines) for pid, lines in strace_runs(kx.guest.serial()) if pid in finished]
    assert runs, "no strace run of a process kx traced from its execve to its exit"
    pid, strace_lines = runs[-1]
    kx_lines, kx_events = kx_lines_of(events, pid)
    children = {int(m.group(1)) for l in strace_lines for m in [re.match(r"clone3?\(.*\) += (\d+)$", l)] if m}
    pids = {pid} | children
    want = [normalize(l, pids) for l in strace_lines]
    got = [normalize(l, pids) for l in kx_lines]
    matcher = difflib.SequenceMatcher(a=want, b=got, autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    figure = same / len(want)
    diff = "\n".join(difflib.unified_diff(want, got, "strace", "kx", lineterm="", n=0))
    print(f"\nstrace oracle: {same} of {len(want)} lines match ({figure:.1%}), pid {pid}\n{diff}")
    assert figure >= MATCH_FLOOR, f"{figure:.1%} of strace's lines match kx's:\n{diff}"
    # The decoders the workload exercises are all in the comparison.
    for name in ("clone3", "wait4", "rt_sigaction", "socket", "ioctl", "mprotect", "nanosleep"):
        assert any(l.startswith(name + "(") for l in strace_lines), name
    return figure, kx_events, want, got


def test_kx_trace_matches_strace(oracle, tmp_path):
    figure, kx_events, _, _ = compare_with_strace(oracle, tmp_path / "trace.jsonl", "loop")
    assert kx_events[0]["line"].startswith('execve("/bin/kxsys", ["/bin/kxsys"], 0x')
    reread = [n for e in kx_events for n in e["notes"] if "read at the return" in n]
    print(f"strings read again at the return: {len(reread)}")


def test_plugin_engine_matches_strace(plugin_oracle, tmp_path):
    figure, kx_events, want, got = compare_with_strace(plugin_oracle, tmp_path / "trace.jsonl", "plugin")
    differing = [l for l in got if l not in want]
    assert all(l.startswith("execve(") for l in differing), differing
def test_struct_layouts_are_the_kernels(oracle):
    """The user structs kx decodes have the size and member offsets the
    kernel's DWARF gives them."""
    from gdbext.decoders import syscall_structs as S
    kx = oracle
    kx.ensure_stopped()
    assert kx.gdb.eval("sizeof(struct __kernel_timespec)") == S.TIMESPEC_SIZE
    assert kx.gdb.eval("sizeof(struct sigaction)") == S.SIGACTION_SIZE
    for member, offset in S.SIGACTION_OFFSETS.items():
        assert kx.gdb.eval(f"(long)&((struct sigaction *)0)->{member}") == offset, member
    assert kx.gdb.eval("sizeof(struct clone_args)") == S.CLONE_ARGS_SIZE
    for i, member in enumerate(S.CLONE_ARGS_FIELDS):
        assert kx.gdb.eval(f"(long)&((struct clone_args *)0)->{member}") == 8 * i, member
