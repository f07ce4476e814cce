"""Start gdb on a lab kernel: the argv, and a small GDB/MI driver.

The argv enables gdb's index cache *before* the vmlinux loads (`-iex`): on the
590 MB Debian vmlinux that turns the first type lookup from ~20 s / 1.9 GB
into well under a second.

`GdbMI` drives one long-lived gdb over the machine interface, which frames
every command's output and error exactly; the tests and benchmarks use it so
that dozens of commands share one attach.
"""
import os
import queue
import re
import signal
import subprocess
import threading
import time

from . import paths, sources, toolchains


def gdb_argv(vmlinux=None, port=None, load_kx=True, batch=False, mi=False,
             nx=True, extra_iex=(), extra_ex=(), arch="x86_64") -> list:
    argv = toolchains.gdb_prefix(arch) + ["-q"]
    if nx:
        argv.append("-nx")
    if batch:
        argv.append("-batch")
    if mi:
        argv.append("--interpreter=mi3")
    argv += ["-iex", f"set index-cache directory {paths.index_cache_dir()}{toolchains.index_cache_suffix()}",
             "-iex", "set index-cache enabled on",
             "-iex", "set pagination off", "-iex", "set confirm off",
             "-iex", "set width 0"]
    for cmd in extra_iex:
        argv += ["-iex", cmd]
    # The kernel's source lines at a stop (`list`, the frame line).
    for cmd in sources.gdb_source_commands(vmlinux) if vmlinux else ():
        argv += ["-iex", cmd]
    if load_kx:
        argv += ["-ex", f"source {paths.GDBINIT}"]
    if vmlinux:
        argv.append(str(vmlinux))
    if port:
        argv += ["-ex", f"target remote 127.0.0.1:{port}"]
    for cmd in extra_ex:
        argv += ["-ex", cmd]
    return argv


class GdbError(Exception):
    """gdb answered ^error: the message is the one line the user would see."""


def _c_string(s: str) -> str:
    """Unquote an MI c-string body (without its surrounding quotes)."""
    i = 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a",
               "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}
    raw = bytearray()
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n in escapes:
                raw += escapes[n].encode()
                i += 2
                continue
            m = re.match(r"[0-7]{1,3}", s[i + 1:])
            if m:
                raw.append(int(m.group(0), 8) & 0xFF)
                i += 1 + len(m.group(0))
                continue
        raw += c.encode()
        i += 1
    return raw.decode("utf-8", errors="replace")


class GdbMI:
    """One gdb process spoken to over MI3."""

    def __init__(self, argv, env=None, cwd=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     text=True, bufsize=1, errors="replace",
                                     start_new_session=True)
        self.lines = queue.Queue()
        self.token = 100
        self.transcript = []
        self.async_records = []
        threading.Thread(target=self._reader, daemon=True).start()
        self.startup = self._collect(None, timeout=300)

    def _reader(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _next_line(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("gdb did not answer in time")
        try:
            line = self.lines.get(timeout=left)
        except queue.Empty:
            raise TimeoutError("gdb did not answer in time") from None
        if line is None:
            raise EOFError("gdb exited:\n" + "\n".join(self.transcript[-30:]))
        self.transcript.append(line)
        return line

    def _collect(self, token, timeout):
        """Read until the result record for `token` (or the first prompt)."""
        deadline = time.monotonic() + timeout
        out, log, result = [], [], None
        while True:
            line = self._next_line(deadline)
            if line.startswith("~") or line.startswith("@"):
                out.append(_c_string(line[2:-1]))
            elif line.startswith("&"):
                log.append(_c_string(line[2:-1]))
            elif line.startswith(("*", "=")):
                self.async_records.append(line)
            elif line.strip() == "(gdb)":
                if token is None or result is not None:
                    return {"output": "".join(out), "log": "".join(log), "result": result}
            else:
                m = re.match(r"^(\d*)\^(\w+),?(.*)$", line)
                if m and (token is None or m.group(1) == str(token)):
                    result = (m.group(2), m.group(3))
                elif not m:
                    out.append(line + "\n")  # inferior or stray text

    def send(self, command: str) -> int:
        """Send an MI command without waiting; its token, for _collect()."""
        self.token += 1
        self.proc.stdin.write(f"{self.token}{command}\n")
        self.proc.stdin.flush()
        return self.token

    def send_console(self, command: str) -> int:
        """Start a CLI command without waiting (to interrupt it, say)."""
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        return self.send(f'-interpreter-exec console "{quoted}"')

    def mi(self, command: str, timeout: float = 120.0) -> dict:
        token = self.send(command)
        reply = self._collect(token, timeout)
        kind, rest = reply["result"]
        if kind == "error":
            m = re.search(r'msg="((?:[^"\\]|\\.)*)"', rest)
            raise GdbError(_c_string(m.group(1)) if m else rest)
        reply["class"] = kind
        reply["rest"] = rest
        return reply

    def cmd(self, command: str, timeout: float = 120.0) -> str:
        """Run a CLI command; return what it printed.  Raises GdbError."""
        quoted = command.replace("\\", "\\\\").replace('"', '\\"')
        return self.mi(f'-interpreter-exec console "{quoted}"', timeout)["output"]

    def cmd_full(self, command: str, timeout: float = 120.0) -> dict:
        """Like cmd, but never raises GdbError: {output, log, error}."""
        try:
            quoted = command.replace("\\", "\\\\").replace('"', '\\"')
            r = self.mi(f'-interpreter-exec console "{quoted}"', timeout)
            return {"output": r["output"], "log": r["log"], "error": None}
        except GdbError as e:
            return {"output": "", "log": "", "error": str(e)}

    def eval(self, expr: str) -> int:
        """An integer expression, evaluated by gdb itself."""
        try:
            text = self.cmd(f"output/d (long long)({expr})").strip()
            return int(text) & 0xFFFFFFFFFFFFFFFF
        except GdbError as exc:
            if "Invalid cast" not in str(exc):
                raise
        return int(self.cmd(f"output/x {expr}").strip(), 16)  # flags types: $eflags

    # -- execution control ---------------------------------------------------
    def wait_stopped(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for i, rec in enumerate(self.async_records):
                if rec.startswith("*stopped"):
                    del self.async_records[: i + 1]
                    return rec
            line = self._next_line(deadline)
            if line.startswith(("*", "=")):
                self.async_records.append(line)

    def cont(self) -> None:
        self.async_records.clear()
        self.mi("-exec-continue")

    def interrupt(self, timeout: float = 30.0) -> str:
        # An interrupt that reaches gdb while it is resuming from a breakpoint
        # whose stop() said no can be lost (gdb 13 all-stop remote); ask
        # again, as a user would press Ctrl-C again.
        attempts = 3
        for attempt in range(attempts):
            self.mi("-exec-interrupt")
            try:
                return self.wait_stopped(timeout / attempts)
            except TimeoutError:
                if attempt == attempts - 1:
                    raise

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("-gdb-exit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()


def start_mi(vmlinux, port, **kw) -> GdbMI:
    argv = gdb_argv(vmlinux, None, mi=True, extra_iex=["set mi-async on"], **kw)
    gdb = GdbMI(argv)
    gdb.attach_output = ""
    if port:
        # kx checks the vmlinux against the guest and applies the KASLR slide
        # at the stop that attaching causes (gdbext/kernel/kaslr.py); what
        # it says is kept here.
        gdb.attach_output = gdb.mi(f"-target-select remote 127.0.0.1:{port}", timeout=60)["output"]
    return gdb
