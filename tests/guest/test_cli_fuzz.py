"""Command-line fuzzing of every `kx` subcommand.

The subcommands come from `help kx`, so a new one is fuzzed without
touching this file.  Inputs are drawn from a seeded generator
(deterministic in CI; KX_FUZZ_SEED / KX_FUZZ_N to explore): random words,
numbers out of range, negative and huge, malformed numbers, names with
quotes, backslashes, format strings, unicode and very long ones, unknown
and repeated options -- each in text mode and with --json.

Checks, per input: no Python traceback and no "internal error" (kx's
catch-all for its own bugs); an error is one line; --json prints exactly one
JSON object on one line (kx trace: one object per line).  Per subcommand:
gdb still evaluates `print 1+1`, and the guest is exactly as before
(tests/reliability.py Snapshotter: every vCPU's registers from QEMU's
monitor, the code at each rip, the kernel text, breakpoints,
scheduler-locking, PhyMemMode).

Commands that resume the guest are fenced: every `kx break` input is
followed by `kx break delete`, every `kx trace` input gets `--count 1` at the
end (argparse: the last one wins) and a watchdog that sends gdb a real
SIGINT if the trace is still running after a few seconds (a --pid filter
that never matches); `--out` only ever names a file in a temporary
directory, and `--engine gdb` (asynchronous under MI) is not drawn.
"""
import json
import os
import random
import re
import signal

from tests import reliability as R

from .test_matrix import help_subcommands

SEED = int(os.environ.get("KX_FUZZ_SEED", "7"))
PER_COMMAND = int(os.environ.get("KX_FUZZ_N", "36"))

NUMBERS = ["0", "1", "-1", "7", "255", "256", "300", "-300", "4096", "65535", "2147483647", "2147483648",
           "-2147483649", "4294967296", "9223372036854775807", "-9223372036854775808",
           "18446744073709551615", "18446744073709551616", "340282366920938463463374607431768211456",
           "9" * 400, "-" + "9" * 60, "0x", "0x-1", "0xffffffffffffffffffff", "0xZZ", "0b102", "0o9", "0_1",
           "1_000", "1e9", "1.5", "-0", "+5", "nan", "inf", "\u0663", "\u00b9", "0xffff888000000000",
           "0xffffffff81000000", "0x7fffffffe000"]
WORDS = ["lstar", "star", "efer", "openat", "write", "read", "init", "kxwork", "swapper/0", "bogus", "delete",
         "all", "64", "32", "x32", "loop", "auto", "IA32_LSTAR", "ia32_lstar", "msr", "sys_call_table",
         "entry_SYSCALL_64", "current", "pid", "task", "vdso", "help", "NULL", "none", "true", "-"]
ODD = ["'", '"', "''", '""', "'unbalanced", '"unbal', "\\", "\\\\", "a\\b", "%s%s%s%n", "%x", "{}", "{0}",
       "${x}", "$(reboot)", "`id`", ";", "|", "&&", "#", "*", "?", "\t", "caf\u00e9", "\u65e5\u672c\u8a9e",
       "\U0001f600", "\u202eevil", "\u0000", "\ufeff", "A" * 5000, "x" * 300, "..", "../../etc/passwd",
       "/dev/null", "/", "~", "-" * 40, "--", "---json", "--json=1", "--JSON"]
OPTIONS = ["--cpu", "--pid", "--comm", "--abi", "--count", "--engine", "--check", "--return", "--no-lstar",
           "--json", "--bogus", "-x", "--cpu=", "--cpu=-5", "--cpu=0x1", "--pid=", "--", "-", "--count=0",
           "--abi=7", "--out"]
NEVER = {"gdb"}   # --engine gdb returns at once under MI's async mode


class Fuzzer:
    def __init__(self, seed, tmpdir):
        self.rng = random.Random(seed)
        self.tmpdir = tmpdir

    def token(self):
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(NUMBERS)
        if r < 0.5:
            return self.rng.choice(WORDS)
        if r < 0.75:
            return self.rng.choice(ODD)
        if r < 0.85:
            n = self.rng.randint(1, 12)
            return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz_0123456789-") for _ in range(n))
        return "".join(chr(self.rng.choice([self.rng.randint(0x21, 0x7e), self.rng.randint(0xa0, 0x2fff)]))
                       for _ in range(self.rng.randint(1, 6)))

    def args(self):
        words = []
        for _ in range(self.rng.randint(0, 4)):
            if self.rng.random() < 0.35:
                opt = self.rng.choice(OPTIONS)
                words.append(opt)
                if opt == "--out":
                    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.token())[:40] or "x"
                    words.append(os.path.join(self.tmpdir, safe))
                elif self.rng.random() < 0.8:
                    words.append(self.token())
            else:
                words.append(self.token())
        words = [w for w in words if w not in NEVER and "\u0000" not in w]
        return words


PER_FUNCTION = 15
FUNCTION_ARGS = ["0", "1", "-1", "2", "99", "4096", "0x7fffffff", "18446744073709551615", "1.5", "$pc", "$sp",
                 "(char *)0", "(void *)-1", "$kx_current()", "init_task", "&init_task", "jiffies", "\"runqueues\"",
                 "\"current_task\"", "\"\"", "\"no_such_symbol\"", "\"%s%n\"", "\"caf\u00e9\"",
                 "\"" + "A" * 300 + "\"", "'x'", "{1, 2}", "$_siginfo", "$nonexistent", "sizeof(int)"]


def function_arg(fuzz):
    return fuzz.rng.choice(FUNCTION_ARGS)


def quote(word):
    """Put a word on gdb's command line: quoted when it has a space or a tab
    (gdb_buildargv then sees it as one argument), otherwise as it is, so
    that lone quotes and backslashes reach kx's own parsing."""
    if word and not re.search(r"\s", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_with_watchdog(kx, command, seconds):
    """Run a CLI command over MI; if it has not answered after `seconds`,
    send gdb a real SIGINT (Ctrl-C).  Returns (cmd_full-like dict, interrupted)."""
    gdb = kx.gdb
    token = gdb.send_console(command)
    interrupted = False
    try:
        reply = gdb._collect(token, seconds)
    except TimeoutError:
        interrupted = True
        os.kill(gdb.proc.pid, signal.SIGINT)
        reply = gdb._collect(token, 60)
    kind, rest = reply["result"]
    error = None
    if kind == "error":
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', rest)
        error = m.group(1) if m else rest
    return {"output": reply["output"], "log": reply["log"], "error": error}, interrupted


def gdb_argv(kx, args: str):
    """How gdb splits `args` for a command (gdb.string_to_argv, what kx
    uses); raises if it cannot (an unbalanced quote)."""
    import base64
    b64 = base64.b64encode(args.encode()).decode()
    out = kx.gdb.cmd("python import base64, json, gdb; print(json.dumps(gdb.string_to_argv("
                     f"base64.b64decode('{b64}').decode())))")
    return json.loads(out.strip().splitlines()[-1])


def check_usable(kx):
    out = kx.gdb.cmd_full("print 1+1")
    return out["error"] is None and re.search(r"= 2\b", out["output"])


def target_running(kx):
    r = kx.gdb.cmd_full("output $pc")
    return r["error"] is not None and "running" in r["error"]


def _fuzz_line(kx, fuzz, sub, i):
    """One fuzzed command line for `kx sub`, and whether it asks for --json."""
    words = fuzz.args()
    if i % 2:
        words.insert(fuzz.rng.randint(0, len(words)), "--json")
    args = " ".join(quote(w) for w in words)
    if sub == "trace":
        args += " --count 1"
    # --json was typed: a word of gdb's argv, or a word of the raw line (an
    # unbalanced quote makes the rest one argument).
    wants_json = any(w.lstrip("\"'") == "--json" for w in args.split())
    try:
        wants_json = wants_json or "--json" in gdb_argv(kx, args)
    except Exception:
        pass   # gdb cannot split it
    return f"kx {sub} {args}", wants_json


def _run_fuzzed_trace(kx, line, where, wants_json):
    r, interrupted = run_with_watchdog(kx, line, 3)
    problems = R.output_problems(where, r["output"], r["log"], r["error"] or "")
    if wants_json and not interrupted:
        for l in (l for l in r["output"].splitlines() if l.strip()):
            try:
                assert isinstance(json.loads(l), dict)
            except (ValueError, AssertionError):
                problems.append(f"--json printed a non-JSON line: {l[:200]!r}")
                break
    if target_running(kx):
        problems.append("the target was left running")
        kx.gdb.interrupt()
    kx.running = False
    return r, problems


def _fuzz_command(kx, kernel_series, fuzz, snapper, sub, per_command):
    """`per_command` fuzzed lines of `kx sub`: the findings."""
    findings = []
    before = snapper.take()
    for i in range(per_command):
        line, wants_json = _fuzz_line(kx, fuzz, sub, i)
        where = f"{kernel_series}/fuzz: {line[:200]}"
        R.record_fuzz()
        if sub == "trace":
            r, problems = _run_fuzzed_trace(kx, line, where, wants_json)
        else:
            r = R.run_checked(kx, line, where, wants_json=wants_json)
            problems = r["problems"]
        if r["error"] and "\n" in r["error"].strip():
            problems.append(f"error of more than one line: {r['error'][:300]!r}")
        if sub == "break":
            kx.gdb.cmd_full("kx break delete")
        findings += [f"`{line[:300]}`: {p}" for p in problems]
    if not check_usable(kx):
        findings.append(f"after fuzzing kx {sub}: gdb no longer evaluates `print 1+1`")
    keys = None
    if sub == "trace":   # the trace resumed the guest: registers legitimately moved
        keys = [k for k in before if k != "registers" and not k.startswith("cpu") and k != "gdb thread"]
    for d in R.diff(before, snapper.take(), keys=keys):
        R.record_disturbance(f"{kernel_series}/fuzz kx {sub}", d)
        findings.append(f"fuzzing kx {sub} disturbed the guest: {d}")
    return findings


def _fuzz_functions(kx, kernel_series, fuzz, snapper, per_function):
    """The convenience functions with odd arguments of every kind gdb can
    pass: (inputs tried, findings)."""
    functions = sorted(set(re.findall(r"^function (kx_\w+) --", kx.cmd("help function"), re.M)))
    assert {"kx_current", "kx_per_cpu", "kx_ptregs"} <= set(functions), functions
    findings, tried = [], 0
    before = snapper.take()
    for name in functions:
        for i in range(per_function):
            args = [function_arg(fuzz) for _ in range(fuzz.rng.randint(0, 3))]
            line = f"print ${name}({', '.join(args)})"
            tried += 1
            R.record_fuzz()
            r = R.run_checked(kx, line, f"{kernel_series}/fuzz: {line[:200]}")
            findings += [f"`{line[:300]}`: {p}" for p in r["problems"]]
    if not check_usable(kx):
        findings.append("after fuzzing the functions: gdb no longer evaluates `print 1+1`")
    for d in R.diff(before, snapper.take()):
        R.record_disturbance(f"{kernel_series}/fuzz $kx_ functions", d)
        findings.append(f"fuzzing the functions disturbed the guest: {d}")
    assert tried == per_function * len(functions)
    return tried, findings


def test_cli_fuzz(kx, kernel_series, tmp_path):
    kx.run_to("entry_SYSCALL_64")   # PTI user CR3: every read is a page walk, msr injects
    fuzz_every_command(kx, kernel_series, R.Snapshotter(kx), tmp_path)


def fuzz_every_command(kx, kernel_series, snapper, tmp_path, per_command=PER_COMMAND, per_function=PER_FUNCTION):
    """Fuzz every kx subcommand and function on a stopped guest; assert no
    finding.  Also the i386 guest's (tests/guest_i386/)."""
    subs = help_subcommands(kx)
    assert {"msr", "gdt", "idt", "tss", "task", "ps", "regs", "syscalls", "event", "break", "trace"} <= set(subs)
    # Resuming commands last: they move the guest.
    subs = [s for s in subs if s not in ("break", "trace")] + [s for s in ("break", "trace") if s in subs]
    fuzz = Fuzzer(SEED, str(tmp_path))
    findings = []
    for sub in subs:
        findings += _fuzz_command(kx, kernel_series, fuzz, snapper, sub, per_command)
    tried, more = _fuzz_functions(kx, kernel_series, fuzz, snapper, per_function)
    findings += more
    tried += per_command * len(subs)
    assert not findings, f"{len(findings)} findings in {tried} inputs:\n" + "\n".join(findings[:40])
