"""Boot the lab guest under QEMU with a gdbstub on loopback.

A Guest owns one QEMU process: its serial log (the tests' window on the
workload's KX-* lines), its HMP monitor socket (an independent view of the
CPU, no gdb involved) and its gdbstub port.  `stop()` always reaps QEMU, and a
guest started with `die_with_parent` is also killed by the kernel
(PR_SET_PDEATHSIG) if the Python process that owns it dies first.
"""
import ctypes
import dataclasses
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import tempfile
import time

from . import bootstrap, initramfs, kernels, paths, plugin, qemu10, qemu_arm64  # paths puts the checkout on sys.path
from gdbext.decoders.qemu_monitor import parse_info_registers

PR_SET_PDEATHSIG = 1
BOOT_ATTEMPTS = 3
# What the kernel prints when it oopses or panics (lib/bug.c, kernel/panic.c,
# arch/x86/kernel/dumpstack.c).
CRASH = re.compile(r"Kernel panic - not syncing|\bOops: |\bBUG: |general protection fault|"
                   r"Fatal exception|Kernel BUG at")


class BootCrash(Exception):
    """The kernel oopsed or panicked before the workload's first heartbeat."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Runs in the child between fork and exec.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclasses.dataclass
class BootOptions:
    kernel: str = kernels.DEFAULT_SERIES
    smp: int = 2
    kaslr: bool = False
    pti: str = "auto"          # on | off | auto
    accel: str = "tcg"         # tcg | kvm
    port: int = 0              # 0: pick a free loopback port
    cpu: str = ""              # "" = QEMU's default model (qemu64, AMD-flavoured)
    memory: str = "512M"
    stopped: bool = False      # -S: freeze the CPU before the first instruction
    workload: str = "loop"     # loop | spin (adds a back-to-back getpid child) | strace (the oracle)
    sleep_ms: int = 20
    append: str = ""           # extra kernel command line
    plugin: str = ""           # the kxtrace plugin's control socket ("": no plugin)
    plugin_ring_kb: int = 0    # KiB per vCPU ring (0: the plugin's default, 128 MiB)
    arch: str = kernels.DEFAULT_ARCH   # x86_64 | i386 (Debian's 686-pae kernel) | arm64 (qemu_arm64.py)
    lpa2: bool = False         # arm64: FEAT_LPA2 on (52-bit VAs on 6.12)


class Guest:
    def __init__(self, opts: BootOptions, kernel: kernels.Kernel = None, workdir=None):
        self.opts = opts
        self.kernel = kernel or kernels.fetch(opts.kernel, arch=opts.arch)
        self.initrd = initramfs.build_for(self.kernel)
        self.port = opts.port or free_port()
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="kx-guest-", dir=paths.run_dir()))
        self.serial_log = self.workdir / "serial.log"
        self.monitor_path = self.workdir / "monitor.sock"
        self.proc = None
        self.boot_failures = []

    # -- command line --------------------------------------------------------
    def cmdline(self) -> str:
        if self.opts.arch == "arm64":
            words = qemu_arm64.cmdline_words(self.opts.kaslr, self.opts.pti)
        else:
            words = ["console=ttyS0", "panic=-1", "loglevel=4"]
            words.append("kaslr" if self.opts.kaslr else "nokaslr")
            if self.opts.pti in ("on", "off"):
                words.append(f"pti={self.opts.pti}")
        words.append(f"kxsleep_ms={self.opts.sleep_ms}")
        if self.opts.workload != "loop":
            words.append(f"kxmode={self.opts.workload}")
        if self.opts.append:
            words.append(self.opts.append)
        return " ".join(words)

    def argv(self) -> list:
        o = self.opts
        # KX_QEMU picks the QEMU (qemu10.select: bookworm-backports' 10.0.2
        # by default, "7.2" for the system's, or a path with
        # KX_QEMU_DATADIR); a guest with the kxtrace plugin needs 10.0.
        if o.arch == "arm64":
            prefix = qemu_arm64.prefix(o.cpu, o.lpa2)
        elif o.plugin:
            prefix = plugin.qemu_args(o.plugin, ring_kb=o.plugin_ring_kb)
        else:
            prefix = qemu10.select().prefix()
        if self.kernel.arch == "i386":
            prefix = _i386_prefix(prefix)
        argv = [*prefix,
                "-accel", o.accel, "-smp", str(o.smp), "-m", o.memory,
                "-kernel", str(self.kernel.vmlinuz), "-initrd", str(self.initrd),
                "-append", self.cmdline(),
                "-display", "none", "-no-reboot", "-nodefaults",
                "-serial", f"file:{self.serial_log}",
                "-monitor", f"unix:{self.monitor_path},server,nowait",
                "-gdb", f"tcp:127.0.0.1:{self.port}"]
        # The 686-pae kernel needs PAE and NX: QEMU's qemu32 model lacks NX.
        cpu = o.cpu or ("Haswell" if self.kernel.arch == "i386" else "")
        if cpu and o.arch != "arm64":
            argv += ["-cpu", cpu]
        if o.stopped:
            argv.append("-S")
        return argv

    # -- lifecycle -----------------------------------------------------------
    def start(self, die_with_parent: bool = True, timeout: float = 120.0) -> "Guest":
        """Boot; wait for the workload's first heartbeat (or, with -S, for the
        gdbstub).  A kernel that oopses or panics before the heartbeat is
        booted again, up to BOOT_ATTEMPTS times in all: sid's 7.2 was seen to
        oops early in boot under QEMU 7.2 TCG on 2 vCPUs ("Oops: int3" in
        sched_clock_cpu, "Fatal exception in interrupt") with no debugger."""
        self.boot_failures = []
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            self._spawn(die_with_parent)
            if self.opts.stopped:
                self._wait_for_port(timeout)
                return self
            try:
                self._wait_for_boot(timeout)
                return self
            except BootCrash as crash:
                self.stop()
                kept = self.workdir / f"serial.log.{attempt}"
                os.replace(self.serial_log, kept)
                self.boot_failures.append({"attempt": attempt, "line": crash.line, "serial": str(kept)})
                bootstrap.log(f"boot {attempt}/{BOOT_ATTEMPTS} of {self.kernel.abi}: the kernel crashed "
                              f"before the workload ran ({crash.line.strip()}); serial kept in {kept}")
        raise RuntimeError(f"{self.kernel.abi} crashed in each of {BOOT_ATTEMPTS} boots: "
                           + "; ".join(f["line"].strip() for f in self.boot_failures))

    def _spawn(self, die_with_parent: bool) -> None:
        self.serial_log.write_bytes(b"")
        self.qemu_log = open(self.workdir / "qemu.log", "wb")
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=self.qemu_log,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None)

    def _wait_for_boot(self, timeout: float) -> None:
        """Until the first KX-HEARTBEAT; BootCrash on an oops or panic first
        (with panic=-1 and -no-reboot, a panic also ends QEMU)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()           # before the read: a dead QEMU's log is complete
            text = self.serial()
            beat = text.find("KX-HEARTBEAT")
            crash = CRASH.search(text, 0, beat if beat >= 0 else len(text))
            if crash:
                raise BootCrash(text[crash.start():].split("\n", 1)[0])
            if beat >= 0:
                return
            if not alive:
                self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no 'KX-HEARTBEAT' on the serial console after {timeout} s;"
                                   f" last output:\n{text[-1500:]}")
            time.sleep(0.05)

    def _wait_for_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"QEMU's gdbstub never listened on {self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.workdir / "qemu.log").read_text(errors="replace")
            raise RuntimeError(f"QEMU exited with {self.proc.returncode}:\n{log[-2000:]}"
                               f"\nserial:\n{self.serial()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.qemu_log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the serial console --------------------------------------------------
    def serial(self) -> str:
        return self.serial_log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match:
        """Wait for `pattern` to appear in the serial log past offset `after`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.serial()
            m = rx.search(text, after)
            if m:
                return m
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r} on the serial console after {timeout} s;"
                                   f" last output:\n{text[-1500:]}")
            time.sleep(0.05)

    def heartbeats(self) -> int:
        return len(re.findall(r"KX-HEARTBEAT", self.serial()))

    def workload(self) -> dict:
        """The workload's own account of itself (KX-WORK and KX-SEQ lines)."""
        m = self.wait_for(r"KX-WORK pid=(\d+) vdso=(0x[0-9a-f]+) target=(\S+)")
        seq = self.wait_for(r"KX-SEQ ([0-9,]+)")
        pids = [int(p) for p in re.findall(r"KX-WORK pid=(\d+)", self.serial())]
        return {"pid": pids[-1], "vdso": int(m.group(2), 16), "target": m.group(3),
                "seq": [int(n) for n in seq.group(1).split(",")]}

    # -- the HMP monitor: CPU state without gdb ------------------------------
    def hmp(self, command: str, timeout: float = 10.0) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.monitor_path))
            banner = b""
            while b"(qemu) " not in banner:
                banner += s.recv(4096)
            s.sendall(command.encode() + b"\n")
            out = b""
            while not out.rstrip().endswith(b"(qemu)"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        text = out.decode(errors="replace").replace("\r", "")
        # Drop the echoed command line and the trailing prompt.
        lines = text.split("\n")
        if lines and command in lines[0]:
            lines = lines[1:]
        return "\n".join(lines).rsplit("(qemu)", 1)[0]

    def cpu_registers(self, cpu: int) -> dict:
        """`info registers` of one vCPU, parsed: {name: int} plus segment
        tuples.  An answer without the instruction pointer (seen once in a
        whole run on a loaded host) is asked for again, then reported."""
        for _ in range(3):
            text = self.hmp(f"cpu {cpu}") + self.hmp("info registers")
            regs = parse_info_registers(text)
            if "rip" in regs or "eip" in regs:
                return regs
            time.sleep(0.2)
        raise RuntimeError(f"QEMU's monitor gave no registers for CPU {cpu}: {text[-400:]!r}")

    # -- state file for `lab boot` / `lab gdb` -------------------------------
    def describe(self) -> dict:
        return {"pid": self.proc.pid if self.proc else None, "port": self.port,
                "kernel": self.kernel.series, "arch": self.opts.arch, "abi": self.kernel.abi,
                "vmlinux": str(self.kernel.vmlinux), "system_map": str(self.kernel.system_map),
                "serial_log": str(self.serial_log), "monitor": str(self.monitor_path),
                "workdir": str(self.workdir), "cmdline": self.cmdline(),
                "boot_failures": getattr(self, "boot_failures", []),
                "trace_plugin": self.opts.plugin or None}


def _i386_prefix(prefix: list) -> list:
    """The same QEMU's qemu-system-i386, beside its qemu-system-x86_64."""
    binary = pathlib.Path(prefix[0])
    return [str(binary.with_name("qemu-system-i386"))] + prefix[1:]


def state_file(name: str = "default") -> pathlib.Path:
    return paths.run_dir() / f"{name}.json"


def save_state(guest: Guest, name: str = "default", info: dict = None) -> None:
    """`info`: guest.describe(), as the caller amended it."""
    state_file(name).write_text(json.dumps(info or guest.describe(), indent=1))


def load_state(name: str = "default"):
    f = state_file(name)
    if not f.exists():
        return None
    state = json.loads(f.read_text())
    try:
        os.kill(state["pid"], 0)
    except (ProcessLookupError, TypeError):
        f.unlink()
        return None
    return state
