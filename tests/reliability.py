"""Issue 7's bookkeeping: what the reliability tests tried and what they found.

The guest tests (test_matrix, test_interrupt, test_cli_fuzz, test_stripped)
report here; tests/guest/conftest.py prints the figures at the end of the run.

Two kinds of finding, both must stay at zero:
- a *disturbance*: the guest (or gdb's hold on it) is not exactly as it was
  before a kx command, measured without kx: QEMU's HMP monitor for every
  vCPU's registers (`info registers -a`: GPRs, segments with their hidden
  parts, descriptor tables, CRs, DRs, EFER, FPU/SSE/AVX state, HLT), the code
  bytes at every vCPU's rip (where rdmsr injection writes) and the whole
  kernel text (`pmemsave`, hashed), plus gdb's own settings (breakpoints,
  scheduler-locking, the stub's PhyMemMode);
- a *traceback*: a Python traceback, or kx's catch-all "internal error" (a
  kx bug that the base class turned into one line).

The snapshot helpers take a GuestSession (tests/guestlib.py).
"""
import collections
import dataclasses
import hashlib
import json
import os
import re
import tempfile

START_KERNEL_MAP = 0xFFFFFFFF80000000  # __START_KERNEL_map: text phys = virt - this (nokaslr, phys_base 0)


@dataclasses.dataclass
class _Figures:
    runs: collections.Counter = dataclasses.field(default_factory=collections.Counter)   # (command, state) -> n
    states: set = dataclasses.field(default_factory=set)
    commands: set = dataclasses.field(default_factory=set)
    fuzzed: int = 0
    interrupts: list = dataclasses.field(default_factory=list)  # (what, where it landed)
    disturbances: list = dataclasses.field(default_factory=list)
    tracebacks: list = dataclasses.field(default_factory=list)
    checks: int = 0
    printed: bool = False


FIGURES = _Figures()


def record_run(kernel: str, state: str, command: str) -> None:
    """One kx command run in one target state (the matrix)."""
    word = command_word(command)
    FIGURES.runs[(kernel, state, word)] += 1
    FIGURES.states.add((kernel, state))
    FIGURES.commands.add(word)


def record_fuzz(n: int = 1) -> None:
    FIGURES.fuzzed += n


def record_interrupt(what: str, landed: str) -> None:
    FIGURES.interrupts.append((what, landed))


def record_disturbance(where: str, what) -> None:
    FIGURES.disturbances.append(f"{where}: {what}")


def record_traceback(where: str, text: str) -> None:
    FIGURES.tracebacks.append(f"{where}: {text[-400:]}")


def command_word(command: str) -> str:
    """`kx msr lstar --json` -> `msr`; `print $kx_current()` -> `$kx_current`."""
    m = re.match(r"\s*kx\s+(\S+)", command)
    if m:
        return m.group(1)
    m = re.search(r"\$(kx_\w+)", command)
    return f"${m.group(1)}" if m else command.split()[0]


# -- output checks -----------------------------------------------------------

BUG_MARKERS = ("Traceback", "internal error", "Python Exception")


def output_problems(where: str, *texts) -> list:
    """The bug markers in a command's output/log/error; recorded as tracebacks."""
    found = []
    for text in texts:
        for marker in BUG_MARKERS:
            if text and marker in text:
                found.append(f"{marker!r} in: {text.strip()[:600]}")
    for f in found:
        record_traceback(where, f)
    return found


# gdb 18 under MI prints its announcement of a breakpoint made from Python
# on the console whatever captures it (README, Compatibility): gdb's line,
# not kx's.  Older gdbs print none (kx swallows it: machine/breakpoints.py).
GDB18_ANNOUNCEMENT = re.compile(r"^Breakpoint \d+ at 0x[0-9a-f]+: ")


def gdb_major(kx) -> int:
    if not hasattr(kx.gdb, "major"):
        kx.gdb.major = int(kx.gdb.eval("$_gdb_major"))
    return kx.gdb.major


def run_checked(kx, command: str, where: str, timeout: float = 120, wants_json=None) -> dict:
    """Run a gdb command, never raising: {output, log, error, json, problems}.
    For a command with --json, `json` is the one object it printed (None and
    a problem if it printed anything else).  `error` in text mode must be
    one line."""
    r = kx.gdb.cmd_full(command, timeout=timeout)
    problems = output_problems(where, r["output"], r["log"], r["error"] or "")
    r["json"] = None
    if r["error"] and "\n" in r["error"].strip():
        problems.append(f"error of more than one line: {r['error']!r}")
    if wants_json is None:
        wants_json = "--json" in command.split()
    if wants_json:
        lines = [l for l in r["output"].splitlines() if l.strip()
                 and not (GDB18_ANNOUNCEMENT.match(l) and gdb_major(kx) >= 18)]
        if r["error"]:
            problems.append(f"--json raised a gdb error instead of printing {{\"error\"}}: {r['error']!r}")
        elif len(lines) != 1:
            problems.append(f"--json printed {len(lines)} lines: {r['output'][:400]!r}")
        else:
            try:
                r["json"] = json.loads(lines[0])
                if not isinstance(r["json"], dict):
                    problems.append(f"--json printed a {type(r['json']).__name__}, not an object")
            except ValueError:
                problems.append(f"--json printed no JSON: {lines[0][:300]!r}")
        if isinstance(r["json"], dict) and "error" in r["json"]:
            if not isinstance(r["json"]["error"], str) or "\n" in r["json"]["error"]:
                problems.append(f"bad error value: {r['json']!r}")
    r["problems"] = problems
    return r


# -- the guest snapshot --------------------------------------------------------

class Snapshotter:
    """Everything kx could disturb, read without kx (HMP monitor + plain gdb)."""

    def __init__(self, kx, with_text: bool = True, kernel_loaded: bool = True):
        self.kx = kx
        from kxlab import paths   # the run's own directory: scripts/test removes it
        self.dump = os.path.join(tempfile.mkdtemp(prefix="kx-rel-", dir=paths.run_dir()), "text.bin")
        self.text = None
        if with_text:
            s = kx.symbols
            self.text = (s["_text"] - START_KERNEL_MAP, s["_etext"] - s["_text"])
            # The mapping is right: the first bytes of entry_SYSCALL_64 in
            # guest RAM are the vmlinux's own (endbr64 or swapgs).
            if kernel_loaded:
                probe = self.xp(s["entry_SYSCALL_64"] - START_KERNEL_MAP, 8)
                assert b"\x0f\x01\xf8" in probe, probe.hex()

    def xp(self, phys: int, n: int) -> bytes:
        text = self.kx.guest.hmp(f"xp /{n}xb {phys:#x}")
        return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})\b", text))

    def cpus(self) -> list:
        return [int(n) for n in re.findall(r"CPU #(\d+)", self.kx.guest.hmp("info cpus"))]

    def take(self) -> dict:
        snap = self.cpu_side()
        if self.text:
            snap["kernel text sha1"] = self.text_sha1()
        snap.update(self.gdb_side())
        return snap

    def cpu_side(self) -> dict:
        """Every vCPU's registers and the code at its pc (x86: rip)."""
        kx = self.kx
        snap = {"registers": kx.guest.hmp("info registers -a")}
        for cpu in self.cpus():
            text = kx.guest.hmp(f"cpu {cpu}") + kx.guest.hmp("info registers")
            rip = int(re.search(r"[RE]IP=([0-9a-f]+)", text).group(1), 16)
            cs_base = int(re.search(r"^CS =[0-9a-f]{4} ([0-9a-f]+)", text, re.M).group(1), 16)
            lma = bool(int(re.search(r"EFER=([0-9a-f]+)", text).group(1), 16) & 0x400)
            # Where gdb's $pc is (the address kx would inject at) and where
            # the CPU fetches (cs base + ip outside long mode).
            spots = {rip} | ({(cs_base + rip) & 0xFFFFFFFF} if not lma else set())
            for a in sorted(spots):
                snap[f"cpu{cpu} code@{a:#x}"] = kx.guest.hmp(f"x /16xb {a:#x}").strip()
        return snap

    def text_sha1(self) -> str:
        """The SHA-1 of the kernel text in guest RAM (QEMU's pmemsave)."""
        if os.path.exists(self.dump):
            os.unlink(self.dump)
        self.kx.guest.hmp(f'pmemsave {self.text[0]} {self.text[1]} "{self.dump}"')
        with open(self.dump, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()
        os.unlink(self.dump)
        return digest

    def gdb_side(self) -> dict:
        g = self.kx.gdb
        return {
            "gdb breakpoints": g.cmd("info breakpoints").strip(),
            "scheduler-locking": g.cmd("show scheduler-locking").strip(),
            "PhyMemMode": g.cmd("maint packet qqemu.PhyMemMode").strip().splitlines()[-1],
            "gdb thread": g.cmd("output $_thread").strip(),
        }


def diff(before: dict, after: dict, keys=None) -> list:
    out = []
    for k in keys or sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            b, a = str(before.get(k)), str(after.get(k))
            if k == "registers":
                bl, al = b.splitlines(), a.splitlines()
                changed = [f"{x!r} -> {y!r}" for x, y in zip(bl, al) if x != y][:4]
                out.append(f"registers changed: {'; '.join(changed)}")
            else:
                out.append(f"{k}: {b[:300]!r} -> {a[:300]!r}")
    FIGURES.checks += 1
    return out


def summary_lines() -> list:
    f = FIGURES
    pairs = {(k, s, c) for (k, s, c) in f.runs}
    by_kernel = collections.Counter(k for k, _s, _c in pairs)
    lines = [
        f"commands x states tried: {len(pairs)} (command, state) pairs on "
        + ", ".join(f"{k}: {n}" for k, n in sorted(by_kernel.items()))
        + f"; {len(f.commands)} commands, {len({s for _k, s in f.states})} states,"
        f" {sum(f.runs.values())} runs, {f.checks} guest checks",
        f"inputs fuzzed: {f.fuzzed}",
        f"interruptions (real SIGINT / QEMU killed): {len(f.interrupts)}"
        + "".join(f"; {n}x {k}" for k, n in sorted(collections.Counter(
            f"{w} landed {l}" for w, l in f.interrupts).items())),
        f"guest disturbances found: {len(f.disturbances)}",
        f"tracebacks found: {len(f.tracebacks)}",
    ]
    for d in f.disturbances[:10]:
        lines.append(f"  disturbance: {d}")
    for t in f.tracebacks[:10]:
        lines.append(f"  traceback: {t}")
    return lines


def write_summary(terminalreporter) -> None:
    """Print the figures at the end of the run, once (the conftests of
    tests/guest/, tests/guest_i386/ and tests/guest_arm64/ all ask), and write them to
    KX_RELIABILITY_OUT if set."""
    f = FIGURES
    if f.printed or not (f.runs or f.fuzzed or f.interrupts or f.checks):
        return
    f.printed = True
    terminalreporter.section("kx reliability figures")
    for line in summary_lines():
        terminalreporter.write_line(line)
    out = os.environ.get("KX_RELIABILITY_OUT")
    if out:
        with open(out, "w") as fh:
            fh.write("\n".join(summary_lines()) + "\n")
