"""Guest-test plumbing: one booted guest plus one attached gdb (over MI).

Everything here uses the lab's own code (scripts/kxlab), as the product does.
"""
import dataclasses
import json
import os
import re
import signal
import time

from kxlab import bootstrap, gdbrun, kernels, qemu

_SESSIONS = {}


_GDB_BREAKPOINT_MENTION = re.compile(r"^Breakpoint \d+ at 0x[0-9a-f]+(: file .*, line \d+\.)?$")


@dataclasses.dataclass(frozen=True)
class LabConfig:
    kernel: str = "6.1"
    smp: int = 2
    cpu: str = "Haswell"
    pti: str = "on"
    kaslr: bool = False
    workload: str = "loop"
    vmlinux_kernel: str = None  # attach gdb with another series' vmlinux (the mismatch tests)
    trace_plugin: bool = False  # load the kxtrace plugin (QEMU 10.0.2) and tell kx its socket
    plugin_ring_kb: int = 0     # KiB per vCPU ring of the plugin (0: its default)
    append: str = ""            # extra kernel command line words
    arch: str = "x86_64"        # the guest's architecture (kxlab.kernels.SERIES_BY_ARCH)
    no_vmlinux: bool = False    # attach gdb with no vmlinux (kx loads the guest's kallsyms and BTF)
    lpa2: bool = False          # arm64: FEAT_LPA2 on (52-bit VAs on 6.12)


def int80_entry(symbols) -> str:
    """The int $0x80 entry stub, from System.map: asm_int80_emulation since
    "x86/entry: Convert INT 0x80 emulation to IDTENTRY" (6.7, 6.1.66),
    entry_INT80_compat before (5.10)."""
    return "asm_int80_emulation" if "asm_int80_emulation" in symbols else "entry_INT80_compat"


def all_sessions():
    return list(_SESSIONS.values())


class GuestSession:
    @classmethod
    def get(cls, config: LabConfig) -> "GuestSession":
        if config not in _SESSIONS:
            _SESSIONS[config] = cls(config)
        return _SESSIONS[config]

    def __init__(self, config: LabConfig):
        self.config = config
        self.kernel = kernels.fetch(config.kernel, quiet=True, arch=config.arch)
        self.guest = qemu.Guest(qemu.BootOptions(
            kernel=config.kernel, smp=config.smp, cpu=config.cpu, pti=config.pti,
            kaslr=config.kaslr, workload=config.workload, append=config.append,
            plugin_ring_kb=config.plugin_ring_kb, arch=config.arch), kernel=self.kernel)
        if config.trace_plugin:
            self.guest.opts.plugin = str(self.guest.workdir / "kxtrace.sock")
        self.guest.start()
        self.symbols = self.kernel.symbols()
        self.vmlinux = self.kernel.vmlinux
        if config.vmlinux_kernel and config.vmlinux_kernel != config.kernel:
            self.vmlinux = kernels.fetch(config.vmlinux_kernel, quiet=True).vmlinux
        if config.no_vmlinux:
            self.vmlinux = None
        self.gdb = None
        try:
            self.gdb = gdbrun.start_mi(self.vmlinux, self.guest.port)
            self.gdb.cmd("set kx color off")
            if config.trace_plugin:
                self.gdb.cmd(f"set kx trace-plugin {self.guest.opts.plugin}")
            self.running = False
        except BaseException:
            self.close()
            raise

    @classmethod
    def release(cls, config: LabConfig) -> None:
        """Stop one configuration's guest and gdb now (guests that only one
        test module uses: two TCG guests idling side by side slow both)."""
        session = _SESSIONS.pop(config, None)
        if session is not None:
            session.close()

    # -- state management between tests ------------------------------------
    def ensure_stopped(self):
        if self.running:
            self.gdb.interrupt()
            self.running = False

    def cont(self):
        self.gdb.cont()
        self.running = True

    def wait_stopped(self, timeout=60):
        rec = self.gdb.wait_stopped(timeout)
        self.running = False
        return rec

    def cleanup_after_test(self):
        if self.gdb is None or self.gdb.proc.poll() is not None:
            return
        self.ensure_stopped()
        self.gdb.cmd_full("delete")
        self.gdb.cmd_full("kx break delete")

    def restart(self, why: str) -> None:
        """A fresh guest and gdb in place of ones that no longer answer (a
        command that never returns, an interrupt that is not heard), so one
        hang fails one test, not every later test on this session."""
        restarts = getattr(self, "restarts", 0) + 1
        bootstrap.log(f"{self.config.kernel}: restarting the shared guest and gdb ({why})")
        if self.gdb is not None and self.gdb.proc.poll() is None:
            try:
                os.killpg(self.gdb.proc.pid, signal.SIGKILL)   # it no longer answers
            except ProcessLookupError:
                pass
            self.gdb.proc.wait()
        self.guest.stop()
        self.__init__(self.config)
        self.restarts = restarts

    def close(self):
        try:
            if self.gdb is not None:
                try:
                    self.ensure_stopped()
                    self.gdb.cmd_full("delete")
                    self.gdb.cmd_full("detach")
                except Exception:
                    pass
                self.gdb.close()
        finally:
            self.guest.stop()

    # -- conveniences --------------------------------------------------------
    def cmd(self, command: str) -> str:
        return self.gdb.cmd(command)

    def json(self, command: str) -> dict:
        """Run a kx command with --json; exactly one JSON object on one line."""
        out = self.gdb.cmd(command + " --json")
        # gdb 18 under MI announces a breakpoint that kx creates on the
        # console even while kx captures it: gdb's own line, not kx's.
        lines = [l for l in out.splitlines() if l.strip() and not _GDB_BREAKPOINT_MENTION.match(l)]
        assert len(lines) == 1, f"expected one JSON line from {command!r}, got:\n{out}"
        return json.loads(lines[0])

    def cmd_interrupted(self, command: str, after: float, timeout: float = 120, ready=None):
        """Start a CLI command, send gdb a real SIGINT `after` seconds later
        (what Ctrl-C in a terminal does), and wait for the command's result.
        With `ready` (a callable), the `after` seconds count from when it
        first returns True (polled while the command runs).
        Returns (MI reply dict, seconds from the signal to the reply)."""
        gdb = self.gdb
        token = gdb.send_console(command)
        deadline = time.monotonic() + timeout
        while ready is not None and not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command}: never ready for the SIGINT")
            time.sleep(0.2)
        time.sleep(after)
        os.kill(gdb.proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        reply = gdb._collect(token, timeout)
        return reply, time.monotonic() - t0

    def reg(self, name: str) -> int:
        return self.gdb.eval(f"${name}")

    def select_cpu(self, cpu: int):
        self.gdb.cmd(f"thread {cpu + 1}")

    def run_to(self, location: str, condition: str = None, timeout=60):
        """Continue to a breakpoint at `location`, then delete it."""
        out = self.gdb.cmd(f"tbreak *{location}")
        m = re.search(r"breakpoint (\d+)", out)
        if condition:
            self.gdb.cmd(f"condition {m.group(1)} {condition}")
        self.cont()
        return self.wait_stopped(timeout)

    def heartbeat_continues(self, timeout=30) -> bool:
        """Continue, see at least one new heartbeat on the serial console, stop again."""
        start = len(self.guest.serial())
        self.cont()
        try:
            self.guest.wait_for(r"KX-HEARTBEAT", timeout=timeout, after=start)
            return True
        finally:
            self.ensure_stopped()


def binary_string_at(path, address: int) -> str:
    """The NUL-terminated string the ELF file at `path` holds at virtual
    `address` (what a static workload passes the kernel from its .rodata)."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= address < seg["p_vaddr"] + seg["p_filesz"]:
                data = seg.data()[address - seg["p_vaddr"]:]
                return data[:data.index(b"\0")].decode()
    raise AssertionError(f"{address:#x} is not in {path}'s loaded segments")


LAB_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "lab")


def run_lab(*args, timeout: float = 900):
    """`./scripts/lab ARGS` as a user runs it: (stdout, stderr), asserting
    it ended well and printed no traceback."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(LAB_SCRIPT))
    proc = subprocess.run([sys.executable, LAB_SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TERM": "dumb"}, cwd=root)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "Python Exception" not in out and "internal error" not in out, out[-3000:]
    return proc.stdout, proc.stderr


def output_section(out: str, start: str, end: str) -> str:
    """The part of `out` from `start` up to the next `end`."""
    return out[out.index(start):out.index(end, out.index(start))]
