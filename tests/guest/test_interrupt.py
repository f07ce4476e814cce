"""Ctrl-C in the middle of kx commands, and a QEMU that dies under one
kx trace's Ctrl-C is tested in test_trace.py / test_rsp_loop.py.

The SIGINT is real: os.kill(gdb, SIGINT), what a terminal's Ctrl-C does.
Where it lands is reported honestly.  A probe installed in the test's gdb
wraps kx's own functions (without changing what they do) and records
whether the KeyboardInterrupt surfaced inside the rdmsr injection's step,
inside a memory read of `kx ps`, or nowhere (the command had finished).
To make "inside" certain rather than lucky, one run per command adds a
delay inside the step (after the rdmsr bytes are written and RCX is set)
or inside each memory read; the other runs are unslowed, at random delays.

After each: the guest is exactly as before (tests/reliability.py:
registers of every vCPU from QEMU's monitor, code at each rip, the kernel
text, breakpoints, scheduler-locking, PhyMemMode); the command said
"interrupted" in one line if the signal reached it; gdb still works; and
once per test the guest runs on to a new heartbeat without a SIGTRAP.
"""
import json
import os
import random
import re
import signal
import time

import pytest

from tests import reliability as R

from .conftest import OwnSession, heartbeat_without_trap

PROBE = r'''
import time, gdb
import gdbext.arch.x86_64.msr_inject as _M
import gdbext.machine as _MA
import gdbext.machine.hooks as _MH
KXI = {"landed": None, "slow_step": 0.0, "slow_read": 0.0, "steps": 0, "reads": 0}
_orig_step, _orig_read = _M._raw_step, _MA.read

def _probe_step(cpu):
    KXI["steps"] += 1
    try:
        if KXI["slow_step"]:
            time.sleep(KXI["slow_step"])
        return _orig_step(cpu)
    except KeyboardInterrupt:
        # Here the rdmsr bytes are in guest memory and RCX holds the index.
        KXI["landed"] = KXI["landed"] or "inside the injection step (rdmsr bytes written)"
        raise

def _probe_read(*a, **k):
    KXI["reads"] += 1
    try:
        if KXI["slow_read"]:
            time.sleep(KXI["slow_read"])
        return _orig_read(*a, **k)
    except KeyboardInterrupt:
        KXI["landed"] = KXI["landed"] or ("inside a memory read (injecting)" if _MH.during(_MH.STEP)
                                          else "inside a memory read")
        raise

_M._raw_step = _probe_step
_MA.read = _probe_read

def kxi_reset(slow_step=0.0, slow_read=0.0):
    KXI.update(landed=None, slow_step=slow_step, slow_read=slow_read, steps=0, reads=0)
    _MA.invalidate()

def kxi_report():
    import json
    print("KXI " + json.dumps(KXI))

def kxi_remove():
    _M._raw_step, _MA.read = _orig_step, _orig_read
'''


@pytest.fixture
def probed(kx, tmp_path):
    path = tmp_path / "kxi_probe.py"
    path.write_text(PROBE)
    kx.cmd(f"source {path}")
    yield kx
    kx.gdb.cmd_full("python kxi_remove()")


def probe(kx, **kw):
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    kx.cmd(f"python kxi_reset({args})")


def probe_report(kx):
    out = kx.cmd("python kxi_report()")
    return json.loads(re.search(r"KXI (\{.*\})", out).group(1))


def interrupted_command(kx, command, after):
    """Run `command`; SIGINT to gdb `after` s later.  Returns (reply dict, signalled_while_busy)."""
    reply, _ = kx.cmd_interrupted(command, after)
    kind, rest = reply["result"]
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', rest)
    return {"output": reply["output"], "log": reply["log"],
            "error": (m.group(1) if m else rest) if kind == "error" else None}


def settle(kx):
    """A SIGINT that reached gdb after the command ended may leave gdb's
    quit flag set; the next command would then say "Quit".  What a user sees
    there is gdb's own behaviour: absorb it with a harmless command."""
    for _ in range(3):
        r = kx.gdb.cmd_full("print 1+1")
        if r["error"] is None and re.search(r"= 2\b", r["output"]):
            return True
    return False


def check_one(kx, kernel, label, command, r, report, snapper, before, findings):
    said = r["error"] or ""
    if not said and r["output"].startswith("{"):
        said = json.loads(r["output"].splitlines()[0]).get("error") or ""
    landed = report["landed"] or ("in kx, outside the probes" if "interrupted" in said
                                  else "after the command had finished")
    R.record_interrupt(label, landed)
    where = f"{kernel}/{label}: {command}"
    for p in R.output_problems(where, r["output"], r["log"], r["error"] or ""):
        findings.append(f"{label}: {p}")
    if r["error"] and "\n" in r["error"].strip():
        findings.append(f"{label}: error of more than one line: {r['error']!r}")
    if report["landed"] and "interrupted" not in said:
        findings.append(f"{label}: the signal landed {landed} but the command said {r['error'] or r['output'][:200]!r}")
    if not settle(kx):
        findings.append(f"{label}: gdb no longer evaluates `print 1+1`")
    for d in R.diff(before, snapper.take()):
        R.record_disturbance(where, d)
        findings.append(f"{label} ({landed}): disturbed the guest: {d}")
    return landed


def test_sigint_inside_msr_injection(probed, kernel_series):
    kx = probed
    kx.run_to("entry_SYSCALL_64")        # ring 0, PTI user CR3: kx msr injects rdmsr
    snapper = R.Snapshotter(kx)
    before = snapper.take()
    findings, landings = [], []
    kx.cmd("kx msr")                     # warm: symbols and types looked up, so the timing is the injection's
    # 1. Certain: a 3 s pause inside the first step (the signal cuts it
    # short), the signal at 0.3 s.
    probe(kx, slow_step=3.0)
    r = interrupted_command(kx, "kx msr", 0.3)
    rep = probe_report(kx)
    landings.append(check_one(kx, kernel_series, "SIGINT in kx msr (slowed step)", "kx msr", r, rep,
                              snapper, before, findings))
    assert rep["landed"] == "inside the injection step (rdmsr bytes written)", (rep, r)
    assert r["error"] == "kx msr: interrupted", r
    # 2. Unslowed, at random points of a 12-MSR injection (~40 ms).
    rng = random.Random(11)
    for i in range(8):
        probe(kx)
        r = interrupted_command(kx, "kx msr" + (" --json" if i % 2 else ""), rng.uniform(0.0, 0.03))
        if i % 2 and r["error"] is None:
            lines = [l for l in r["output"].splitlines() if l.strip()]
            if len(lines) != 1 or not isinstance(json.loads(lines[0]), dict):
                findings.append(f"kx msr --json interrupted printed {r['output'][:300]!r}")
        landings.append(check_one(kx, kernel_series, "SIGINT in kx msr", "kx msr", r, probe_report(kx),
                                  snapper, before, findings))
    # The injection still works, and gives what System.map says.
    probe(kx)
    lstar = kx.json("kx msr lstar")["msrs"][0]
    assert lstar["source"] == "rdmsr" and lstar["value"] == kx.symbols["entry_SYSCALL_64"]
    problem = heartbeat_without_trap(kx)
    assert not problem, problem
    assert not findings, "\n".join(findings) + f"\nlandings: {landings}"


def test_sigint_inside_ps(probed, kernel_series):
    kx = probed
    kx.run_to("entry_SYSCALL_64")        # every task read is a page walk here
    snapper = R.Snapshotter(kx)
    before = snapper.take()
    findings, landings = [], []
    kx.cmd("kx ps")                      # warm: the types are looked up, so the time goes to the reads
    probe(kx, slow_read=0.05)
    r = interrupted_command(kx, "kx ps", 0.5)
    rep = probe_report(kx)
    landings.append(check_one(kx, kernel_series, "SIGINT in kx ps (slowed reads)", "kx ps", r, rep,
                              snapper, before, findings))
    assert rep["landed"] and rep["landed"].startswith("inside a memory read"), (rep, r)
    assert r["error"] == "kx ps: interrupted", r
    rng = random.Random(12)
    for i in range(6):
        probe(kx)
        command = "kx ps" + (" --json" if i % 2 else "")
        r = interrupted_command(kx, command, rng.uniform(0.0, 0.02))
        landings.append(check_one(kx, kernel_series, "SIGINT in kx ps", command, r, probe_report(kx),
                                  snapper, before, findings))
    # Still a complete, correct list: pid 1 is init (the workload's own parent).
    probe(kx)
    tasks = kx.json("kx ps")["tasks"]
    assert any(t["pid"] == 1 and t["comm"] == "init" for t in tasks)
    problem = heartbeat_without_trap(kx)
    assert not problem, problem
    assert not findings, "\n".join(findings) + f"\nlandings: {landings}"


# Subcommands that may answer without a target: `kx break` lists kx's own
# breakpoints, `kx syscalls` reads the tables from the vmlinux.
STATIC = {"break", "syscalls"}


def test_qemu_dies_in_the_middle_of_a_command(kernel_series, tmp_path):
    """A throwaway guest (one vCPU): QEMU is killed while `kx ps` reads
    (slowed reads, so the kill lands inside); kx says "target connection
    lost" in one line, gdb stays usable, and every command after that says
    there is no target, in one line (and as {"error"} with --json)."""
    s = OwnSession(kernel_series, smp=1)
    try:
        s.run_to("do_syscall_64")
        path = tmp_path / "kxi_probe.py"
        path.write_text(PROBE)
        s.cmd(f"source {path}")
        probe(s, slow_read=0.05)
        gdb = s.gdb
        token = gdb.send_console("kx ps")
        time.sleep(0.5)
        os.killpg(s.guest.proc.pid, signal.SIGKILL)
        s.guest.proc.wait(10)
        reply = gdb._collect(token, 120)
        kind, rest = reply["result"]
        R.record_interrupt("QEMU killed during kx ps", "inside a memory read")
        R.output_problems(f"{kernel_series}/qemu-killed: kx ps", reply["output"], reply["log"], rest)
        assert kind == "error", reply
        assert "Traceback" not in rest + reply["output"] + reply["log"]
        assert re.search(r'msg="kx ps: target connection lost[^"]*"$', rest), rest
        # gdb itself goes on.
        assert re.search(r"= 2\b", s.cmd("print 1+1"))
        # Every subcommand, text and --json, now says why it cannot answer.
        subs = sorted(set(re.findall(r"^kx (\S+) --", s.cmd("help kx"), re.M)))
        findings = []
        for sub in subs:
            for suffix in ("", " --json"):
                command = f"kx {sub}{ARGS_NEEDED.get(sub, '')}{suffix}"
                R.record_run(kernel_series, "qemu-gone", command)
                r = R.run_checked(s, command, f"{kernel_series}/qemu-gone: {command}", timeout=60)
                findings += [f"`{command}`: {p}" for p in r["problems"]]
                if r["problems"]:
                    continue
                said = r["json"]["error"] if suffix and r["json"] and "error" in r["json"] else r["error"]
                if sub in STATIC and not said:
                    continue      # answered from the vmlinux alone
                if not said or not re.search(r"no target|connection lost|not being run", said):
                    findings.append(f"`{command}` after QEMU died said {said or r['output'][:200]!r}")
        assert re.search(r"= 4\b", s.cmd("print 2+2"))
        assert not findings, "\n".join(findings)
    finally:
        s.close()


# Subcommands that ask for an argument before they ask the target anything.
ARGS_NEEDED = {"pagewalk": " 0xffffffff81000000", "drgn": " -c 1+1"}
