"""What every kx command shares: argument parsing, --json, and errors.

A command subclasses KxCommand, declares its arguments in `arguments()`, and
implements `run(args) -> Report`.  The base class turns every failure into one
line (text) or {"error": ...} (JSON), never a Python traceback.
"""
import argparse
import json
import re
import sys
import traceback

import gdb

from gdbext import errors


_JSON_WORD = re.compile(r"(?:^|\s)[\"']?--json(?:\s|$)")


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise errors.BadArgument(message)

    def exit(self, status=0, message=None):
        if message:
            raise errors.BadArgument(message.strip())
        raise _HelpShown()

    def print_help(self, file=None):
        gdb.write(self.format_help())


def parse_int(text: str) -> int:
    """Decimal, 0x-hex, 0o, 0b; gdb expressions are not evaluated here."""
    try:
        return int(text, 0)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def cpu_number(text: str) -> int:
    n = parse_int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"CPU number must be >= 0, got {n}")
    return n


def word_format() -> str:
    """The format spec of a full-width address or register of the target
    ("#018x" on x86-64, "#010x" on i386)."""
    from gdbext import arch
    return f"#0{2 + 2 * arch.current().pointer_size}x"


def add_cpu_option(parser) -> None:
    parser.add_argument("--cpu", type=cpu_number, default=None,
                        help="vCPU number (default: the selected thread's; gdb thread N is vCPU N-1)")


class KxCommand(gdb.Command):
    """Base class: subclasses set `name` and a docstring (the help text).

    Before any decoding, invoke() makes sure the vmlinux was checked against
    the running kernel (kernel/kaslr.py: once per connection; the KASLR slide
    is applied there too).  On a mismatch a command with
    `needs_kernel_match` refuses with the warning; one without (CPU-state
    decoders: msr, gdt, idt, tss) runs without symbol names and carries it.

    A command of one architecture (`architecture`, an Arch.name) is
    registered whatever the target, since gdb learns the target's
    architecture only on connecting; on another architecture's target it
    refuses in one line."""

    name = ""
    json_ok = True
    needs_kernel_match = True
    loads_guest_kernel = True   # with no vmlinux, load the guest's own symbols first (kernel/guest_session.py)
    architecture = None  # the Arch.name this command is for; None: every architecture
    completions = ()  # extra words offered by tab completion

    def __init__(self):
        super().__init__(f"kx {self.name}", gdb.COMMAND_USER)
        self.parser = _Parser(prog=f"kx {self.name}", add_help=True,
                              description=(self.__doc__ or "").split("\n")[0])
        if self.json_ok:
            self.parser.add_argument("--json", action="store_true",
                                     help="print one JSON object on one line")
        self.arguments(self.parser)

    def arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args):  # -> Report
        raise NotImplementedError

    def complete(self, text, word):
        words = [a for action in self.parser._actions for a in action.option_strings]
        words += list(self.completions() if callable(self.completions) else self.completions)
        word = word or ""
        return sorted({w for w in words if w.startswith(word)})

    def invoke(self, arg, from_tty):
        # --json is honoured even when the rest does not parse: an
        # unbalanced quote makes gdb's argv one word that swallows it.
        want_json = bool(_JSON_WORD.search(arg or ""))
        try:
            argv = gdb.string_to_argv(arg)
        except Exception as exc:  # unbalanced quotes and the like
            self._fail(f"cannot split the arguments: {exc}", want_json)
            return
        want_json = want_json or "--json" in argv
        try:
            args = self.parser.parse_args(argv)
            self.check_architecture()
            if self.loads_guest_kernel:
                from gdbext.kernel import guest_session
                guest_session.ensure_loaded(quiet=want_json)
            mismatch = kernel_mismatch()
            if mismatch and self.needs_kernel_match:
                raise errors.KernelMismatch(mismatch)
            report = self.run(args)
            if mismatch and report is not None and report.data.get("mismatch") != mismatch:
                attach_warning(report, mismatch)
        except _HelpShown:
            return
        except KeyboardInterrupt:
            self._fail("interrupted", want_json)
        except errors.KxError as exc:
            self._fail(str(exc), want_json)
        except gdb.MemoryError as exc:
            self._fail(f"memory not readable: {exc}", want_json)
        except gdb.error as exc:
            self._fail(translate_gdb_error(exc), want_json)
        except Exception as exc:  # a kx bug: still one line, traceback on demand
            from gdbext import settings
            if settings.debug():
                traceback.print_exc(file=sys.stderr)
            self._fail(f"internal error: {type(exc).__name__}: {exc}"
                       " (`set kx debug on` shows the traceback)", want_json)
        else:
            if report is None:
                return
            from gdbext.machine import breakpoints
            breakpoints.end_announcement_line()
            if want_json:
                gdb.write(report.json() + "\n")
            else:
                from gdbext import settings
                gdb.write(report.text(color=settings.color_enabled()))

    def check_architecture(self) -> None:
        if self.architecture is None or not _target_attached():
            return  # without a target, run() says so
        here = target_architecture()
        allowed = (self.architecture,) if isinstance(self.architecture, str) else self.architecture
        if here not in allowed:
            raise errors.NotSupported(f"{' or '.join(allowed)} only; this target is {here}")

    def _fail(self, message: str, want_json: bool):
        message = " ".join(str(message).split())  # one line, always
        if want_json:
            gdb.write(json.dumps({"error": message}) + "\n")
            return
        raise gdb.GdbError(f"kx {self.name}: {message}")


def _target_attached() -> bool:
    try:
        inferior = gdb.selected_inferior()
        return bool(inferior.pid and inferior.threads())
    except gdb.error:
        return False


def target_architecture() -> str:
    """kx's name for the target's architecture, or gdb's when kx has no
    support for it."""
    from gdbext import arch
    try:
        return arch.current().name
    except errors.NotSupported:
        return gdb.selected_inferior().architecture().name()


def kernel_mismatch():
    """The vmlinux-mismatch warning for this connection, or None."""
    from gdbext.kernel import kaslr
    return kaslr.mismatch_message()


def attach_warning(report, message: str) -> None:
    """Put the mismatch warning first in the text and into the JSON."""
    from gdbext.render import Text
    data = report.data
    if isinstance(data, dict):
        data["kernel_mismatch"] = message
        if isinstance(data.get("warnings"), list) and message not in data["warnings"]:
            data["warnings"].insert(0, message)
    report.body.pieces[:0] = Text().warn(message).pieces


def translate_gdb_error(exc: Exception) -> str:
    text = str(exc)
    if "not being run" in text or "no registers" in text.lower() or "without a process" in text:
        return str(errors.NoTarget())
    if "Remote connection closed" in text or "Remote communication error" in text:
        return "target connection lost (QEMU gone?)"
    return text
