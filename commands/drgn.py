"""kx drgn: drgn's console, an expression or a script on the stopped guest."""
import contextlib
import io
import json
import runpy
import sys

from gdbext import api, errors
from gdbext.render import Report, Text

from .base import KxCommand


def drgn_globals(prog) -> dict:
    """What the console, -c and scripts see: `prog`, drgn, its Linux
    helpers (as drgn's own CLI offers them) and kx's api."""
    import drgn
    import drgn.helpers.linux as linux
    names = {n: getattr(linux, n) for n in getattr(linux, "__all__", ())}
    return {**names, "prog": prog, "drgn": drgn, "api": api, "Object": drgn.Object,
            "cast": drgn.cast, "container_of": drgn.container_of}


def _jsonable(value):
    """The value itself when JSON can carry it, else its repr."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def evaluate(source: str, scope: dict):
    """An expression's value, or None after running statements (as
    `python -c` would, printing goes to the console)."""
    try:
        code = compile(source, "<kx drgn -c>", "eval")
    except SyntaxError:
        exec(compile(source, "<kx drgn -c>", "exec"), scope)
        return None
    return eval(code, scope)


class KxDrgn(KxCommand):
    """drgn on the stopped guest, with `prog` bound.
Usage: kx drgn                      drgn's interactive console (Ctrl-D returns to gdb)
       kx drgn -c EXPR|STATEMENTS   evaluate and print (--json: {"result", "output"})
       kx drgn SCRIPT [ARG ...]     run a Python script (sys.argv = [SCRIPT, ARG ...])

`prog` is a drgn.Program of the guest gdb is attached to: memory through
kx's physical reads (cached until the guest runs again), the kernel's own
vmcoreinfo (with the KASLR offset) and the vmlinux's DWARF.  drgn's Linux
helpers (for_each_task, per_cpu, ...) and kx's `api` are in scope.  Needs
the optional drgn package: pip install '.[drgn]' or ./scripts/lab
bootstrap --with-drgn."""

    name = "drgn"

    def arguments(self, p):
        p.add_argument("-c", dest="code", default=None, metavar="CODE", help="a Python expression or statements")
        p.add_argument("script", nargs="?", default=None, help="a Python script to run with `prog` bound")
        p.add_argument("script_args", nargs="*", metavar="ARG", help="the script's arguments")

    def run(self, args):
        if args.code is not None and args.script is not None:
            raise errors.BadArgument("give -c CODE or a SCRIPT, not both")
        console = args.code is None and args.script is None
        if console and args.json:
            raise errors.BadArgument("--json needs -c CODE or a SCRIPT")
        if console and not _interactive():
            # Under MI or a batch gdb there is no terminal to read from: the
            # console would wait forever.
            raise errors.BadArgument("no terminal for drgn's console here: use -c CODE or a SCRIPT")
        prog = api.drgn_program()
        scope = drgn_globals(prog)
        if console:
            return _console(prog, scope)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out) if args.json else contextlib.nullcontext():
                result = self._run_code(args, scope)
        except (errors.KxError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the user's code: its error in one line, as Python names it
            raise errors.KxError(f"{type(exc).__name__}: {exc}") from None
        data = {"result": _jsonable(result), "output": out.getvalue()}
        text = Text()
        if result is not None:
            text.line(repr(result))
        return Report(data, text)

    @staticmethod
    def _run_code(args, scope):
        if args.code is not None:
            return evaluate(args.code, scope)
        argv = sys.argv
        sys.argv = [args.script] + list(args.script_args)
        try:
            runpy.run_path(args.script, init_globals=scope, run_name="__main__")
        except FileNotFoundError:
            raise errors.BadArgument(f"no script {args.script!r}") from None
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise errors.KxError(f"{args.script} exited with {exc.code}") from None
        finally:
            sys.argv = argv
        return None


def _interactive() -> bool:
    """Whether gdb reads a person's terminal (not MI, not batch, not a pipe)."""
    import sys
    return sys.stdin is not None and sys.stdin.isatty()


def _console(prog, scope):
    """drgn's own console (drgn.cli.run_interactive); Python's if that
    cannot run inside this gdb."""
    try:
        from drgn.cli import run_interactive
        run_interactive(prog, globals_func=lambda g: {**g, **scope})
    except (ImportError, RuntimeError, OSError):
        import code
        code.interact(banner="drgn on the stopped guest: `prog` is bound (Ctrl-D returns to gdb)",
                      local=dict(scope), exitmsg="")
    return None


def register():
    KxDrgn()
