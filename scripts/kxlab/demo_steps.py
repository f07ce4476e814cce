"""The steps every `./scripts/lab demo` session script is made of, run
inside gdb (demo.py puts scripts/ on gdb's sys.path before sourcing the
session): a banner per step, a command shown with what it printed, a stop at
a conditional breakpoint."""
import gdb


def banner(title):
    gdb.write("\n\x1b[1m== %s ==\x1b[0m\n" % title if gdb.parameter("style enabled") else
              "\n== %s ==\n" % title)


def show(command):
    gdb.write("(gdb) %s\n" % command)
    try:
        gdb.execute(command)
    except gdb.error as exc:
        gdb.write("  -> %s\n" % exc)


def show_steps(steps):
    """Each (title, command) of `steps`: its banner, then the command."""
    for title, command in steps:
        banner(title)
        show(command)


def stop_at(location, condition):
    """Continue to a temporary breakpoint at `location` under `condition`."""
    bp = gdb.Breakpoint(location, internal=False, temporary=True)
    bp.condition = condition
    gdb.execute("continue")
