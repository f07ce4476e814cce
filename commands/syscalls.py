"""kx syscalls: the kernel's own syscall tables, signatures and dispatch, and
a rootkit check of the tables in guest memory."""
import difflib
import textwrap

from gdbext import arch, errors
from gdbext.kernel import syscalls
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option, parse_int


def _abi_words():
    return [a.name for a in arch.current().abis]


class KxSyscalls(KxCommand):
    """List the kernel's system calls: nr, name, handler and symbol.
Usage: kx syscalls [NAME|NR] [--abi 64|32|x32] [--check] [--cpu N] [--json]

Names come from the handlers in the kernel's own tables (sys_call_table for
64-bit; for ia32 the ia32_sys_call() switch decoded from its code, since
Linux 6.9 and 6.1.85 have no ia32_sys_call_table), read from the vmlinux
file: no target is needed.  The names are the kernel's SYSCALL_DEFINE names
(nr 4 is `newstat`), not always the ABI's.  With NAME or NR, also the
signature, from the ftrace syscall metadata or else the DWARF.

--check compares guest memory with the vmlinux file: every table entry must
be the file's value, the start of an __x64_sys_* (ia32: __ia32_sys_* or
__ia32_compat_sys_*) handler, and inside kernel text; where the kernel
dispatches through a switch (x64_sys_call, 6.9+/6.1.85+) the switch's code in
memory is decoded and compared too, because there the table only names the
handlers and a hook would have to patch the switch."""

    name = "syscalls"

    def completions(self):
        try:
            words = set()
            for abi in arch.current().selectable_abis():
                try:
                    words.update(syscalls.table(abi).names())
                except errors.KxError:
                    pass
            return sorted(words) + _abi_words()
        except Exception:  # completion must never raise (no vmlinux yet, ...)
            return _abi_words()

    def complete(self, text, word):
        # gdb breaks words at '-': for "--ch" the word is "ch", so options
        # are offered by the rest of the token.
        token = text.split()[-1] if text and not text[-1].isspace() else ""
        if token.startswith("-"):
            cut = len(token) - len(word or "")
            opts = [a for action in self.parser._actions for a in action.option_strings]
            return sorted({o[cut:] for o in opts if o.startswith(token)})
        return super().complete(text, word)

    def arguments(self, p):
        p.add_argument("which", nargs="?", metavar="NAME|NR", help="one syscall, by name or number")
        # The word is checked by syscalls.table() (gdbext.arch.parse_abi),
        # after "no vmlinux loaded": before a file gdb knows no architecture.
        p.add_argument("--abi", default="64", help="64 (default), 32 (ia32) or x32")
        p.add_argument("--check", action="store_true",
                       help="compare the tables in guest memory with the vmlinux file")
        add_cpu_option(p)

    def run(self, args):
        t = syscalls.table(args.abi)
        spec = arch.current().abi(t.abi)
        bits = spec.table_label
        entries = t.entries
        single = None
        if args.which is not None:
            single = self._find(t, args.which, bits)
            entries = [single]
        dispatch = syscalls.dispatch(t.abi)
        data = {"abi": t.abi, "table": t.address, "table_symbol": spec.table if t.address is not None else None,
                "switch": t.switch_address, "nr_syscalls": t.nr_syscalls, "source": t.source,
                "dispatch": dispatch}
        problems_by_nr = {}
        check = None
        if args.check:
            cpu = machine.check_cpu(args.cpu)
            problems = syscalls.check(t.abi, cpu)
            for p in problems:
                problems_by_nr.setdefault(p.nr, []).append(p)
            shown = problems if single is None else [p for p in problems if p.nr in (single.nr, None)]
            check = {"cpu": cpu, "clean": not problems, "problems": [p.as_dict() for p in shown],
                     "checked": {"table_entries": t.nr_syscalls if t.address is not None else 0,
                                 "switch": dispatch["function"] if t.model.switch is not None else None}}
            if t.model.switch_error:
                check["switch_error"] = (f"{dispatch['function']}() was not checked: the vmlinux's copy"
                                         f" does not decode ({t.model.switch_error})")
        # A switch that no longer decodes may send any nr anywhere.
        undecodable = any(p.kind == "switch-undecodable" for p in problems_by_nr.get(None, ()))
        rows = []
        for e in entries:
            row = {"nr": e.nr, "name": e.name, "handler": e.handler, "symbol": e.symbol,
                   "ok": (e.nr not in problems_by_nr and not undecodable) if args.check else None,
                   "implemented": e.implemented, "compat": e.compat}
            if args.check and e.nr in problems_by_nr:
                row["problems"] = [p.message for p in problems_by_nr[e.nr]]
            rows.append(row)
        data["entries"] = rows
        if single is not None:
            sig = syscalls.signature(single.nr, t.abi)
            data["signature"] = sig.as_dict() if sig else None
            if sig is None and single.implemented and syscalls.configured_out(single.nr, t.abi):
                data["configured_out"] = True
        if check is not None:
            data["check"] = check
        return Report(data, self.render(data, bits, single is not None))

    @staticmethod
    def _find(t, which, bits):
        try:
            nr = parse_int(which)
        except Exception:
            nr = None
        if nr is not None:
            e = t.entry(nr)
            if e is None:
                raise errors.BadArgument(
                    f"syscall number {nr} is out of range: the {bits} table has 0-{t.nr_syscalls - 1}"
                    " (the kernel returns -ENOSYS)")
            return e
        nr = t.nr(which)
        if nr is None:
            close = difflib.get_close_matches(which, t.names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise errors.BadArgument(f"no syscall named {which!r} in the {bits} table{hint}")
        return t.entries[nr]

    @staticmethod
    def render(d, bits, single):
        t = Text()
        where = (f"{d['table_symbol']} at {d['table']:#x}" if d["table"] is not None
                 else f"no table; decoded from {d['dispatch']['function']}() at {d['switch']:#x}")
        t.head(f"{bits} syscalls: {where}, NR_syscalls {d['nr_syscalls']}")
        t.kv("dispatch", d["dispatch"]["function"], kind="sym", width=10, note=None)
        for line in textwrap.wrap(d["dispatch"]["note"], 96):
            t.line(("dim", "    " + line))
        if single:
            e = d["entries"][0]
            t.kv("nr", str(e["nr"]), width=10)
            t.kv("name", e["name"] or "(not implemented)", kind="sym", width=10)
            t.kv("handler", f"{e['handler']:#018x}", width=10, note=e["symbol"])
            sig = d.get("signature")
            if sig:
                inner = ", ".join(f"{a['type']}{'' if a['type'].endswith('*') else ' '}{a['name']}"
                                  for a in sig["args"]) or "void"
                t.kv("signature", f"{sig['name']}({inner})", kind="str", width=10,
                     note=f"from {sig['source']} ({sig['origin']})")
            elif d.get("configured_out"):
                t.kv("signature", "none", kind="dim", width=10,
                     note="configured out: a COND_SYSCALL stub (kernel/sys_ni.c) that returns -ENOSYS")
            elif e["implemented"]:
                t.kv("signature", "unknown", kind="dim", width=10, note="no ftrace metadata or DWARF for it")
        else:
            _render_rows(t, d["entries"])
        c = d.get("check")
        if c is not None and c.get("switch_error"):
            t.warn(c["switch_error"])
        if c is not None:
            what = []
            if c["checked"]["table_entries"]:
                what.append(f"{c['checked']['table_entries']} table entries")
            if c["checked"]["switch"]:
                what.append(f"the {c['checked']['switch']}() switch")
            if c["clean"]:
                t.line(("ok", f"  check (CPU {c['cpu']}): clean: {' and '.join(what)} match the vmlinux file,"
                              " every entry is its expected handler inside kernel text"))
            else:
                for p in c["problems"]:
                    label = f"nr {p['nr']}" if p["nr"] is not None else "switch"
                    t.warn(f"{label}: {p['message']}")
                if not c["problems"]:
                    t.line(("ok", f"  check (CPU {c['cpu']}): this syscall is clean"
                                  " (other entries have problems: run without NAME)"))
        return t


def _render_rows(t, rows):
    t.line(("key", f"  {'nr':>7}  {'name':<24} {'handler':<18}  symbol"))
    i = 0
    while i < len(rows):
        e = rows[i]
        j = i
        # Runs of unimplemented numbers (gaps in syscall_64.tbl) on one line.
        while (not e["implemented"] and j + 1 < len(rows) and not rows[j + 1]["implemented"]
               and rows[j + 1]["handler"] == e["handler"] and rows[j + 1]["ok"] in (None, True)
               and e["ok"] in (None, True)):
            j += 1
        nr = f"{e['nr']}" if j == i else f"{e['nr']}-{rows[j]['nr']}"
        mark = " " if e["ok"] in (None, True) else "!"
        t.line(mark, ("num", f" {nr:>7}  "), ("sym" if e["name"] else "dim", f"{e['name'] or '-':<24} "),
               ("num", f"{e['handler']:#018x}  "), ("dim", e["symbol"] or "?"))
        i = j + 1


def register():
    KxSyscalls()
