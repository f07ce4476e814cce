"""arm64: every `kx` subcommand fuzzed on the arm64 guest (the x86 fuzzer's
generator, tests/guest/test_cli_fuzz.py), stopped at el0t_64_sync.

Checks, per input: no traceback and no "internal error", an error is one
line, --json prints one JSON object.  Per subcommand: gdb still evaluates
`print 1+1`, and the guest is exactly as before, read without kx: every
vCPU's `info registers` from QEMU's monitor and the 16 bytes at its PC,
gdb's breakpoints, scheduler-locking and PhyMemMode (break and trace
resume the guest: their registers legitimately move).
"""
import os
import re

import pytest

from tests import reliability as R
from tests.guest.test_cli_fuzz import Fuzzer, check_usable, quote, run_with_watchdog, target_running
from tests.guest.test_matrix import help_subcommands

from .test_entry import SVC64_AT_ENTRY

pytestmark = pytest.mark.guest
SEED = int(os.environ.get("KX_FUZZ_SEED", "7"))
PER_COMMAND = int(os.environ.get("KX_ARM64_FUZZ_N", "10"))


def snapshot(a64) -> dict:
    snap = {}
    for cpu in (0, 1):
        text = a64.guest.hmp(f"cpu {cpu}") + a64.guest.hmp("info registers")
        snap[f"cpu{cpu} registers"] = "\n".join(l for l in text.splitlines() if not l.startswith(("Z", "   [", "P", "FFR")))
        pc = int(re.search(r"PC=([0-9a-f]{16})", text).group(1), 16)
        snap[f"cpu{cpu} code"] = a64.guest.hmp(f"x /16xb {pc:#x}").strip()
    g = a64.gdb
    snap["gdb breakpoints"] = g.cmd("info breakpoints").strip()
    snap["scheduler-locking"] = g.cmd("show scheduler-locking").strip()
    snap["PhyMemMode"] = g.cmd("maint packet qqemu.PhyMemMode").strip().splitlines()[-1]
    snap["gdb thread"] = g.cmd("output $_thread").strip()
    return snap


def fuzz_one(a64, fuzz, sub, i):
    words = fuzz.args()
    if i % 2:
        words.insert(fuzz.rng.randint(0, len(words)), "--json")
    args = " ".join(quote(w) for w in words) + (" --count 1" if sub == "trace" else "")
    line = f"kx {sub} {args}"
    where = f"arm64/fuzz: {line[:200]}"
    R.record_fuzz()
    if sub == "trace":
        r, _ = run_with_watchdog(a64, line, 5)
        problems = R.output_problems(where, r["output"], r["log"], r["error"] or "")
        if target_running(a64):
            problems.append("the target was left running")
            a64.gdb.interrupt()
        a64.running = False
    else:
        r = R.run_checked(a64, line, where, wants_json="--json" in words)
        problems = r["problems"]
    if sub == "break":
        a64.gdb.cmd_full("kx break delete")
    return [f"`{line[:300]}`: {p}" for p in problems]


def test_cli_fuzz_leaves_the_arm64_guest_as_it_was(a64, tmp_path):
    a64.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    subs = help_subcommands(a64)
    assert {"sysregs", "vectors", "task", "regs", "event", "syscalls"} <= set(subs)
    subs = [s for s in subs if s not in ("break", "trace")] + ["break", "trace"]
    fuzz = Fuzzer(SEED, str(tmp_path))
    findings = []
    for sub in subs:
        before = snapshot(a64)
        for i in range(PER_COMMAND):
            findings += fuzz_one(a64, fuzz, sub, i)
        if not check_usable(a64):
            findings.append(f"after fuzzing kx {sub}: gdb no longer evaluates `print 1+1`")
        after = snapshot(a64)
        keys = [k for k in before if not k.startswith("cpu") and k != "gdb thread"] \
            if sub in ("break", "trace") else None
        for d in R.diff(before, after, keys=keys):
            R.record_disturbance(f"arm64/fuzz kx {sub}", d)
            findings.append(f"fuzzing kx {sub} disturbed the guest: {d}")
    assert not findings, f"{len(findings)} findings:\n" + "\n".join(findings[:40])
