"""kx syscalls: the kernel's own syscall tables, signatures and dispatch, and
a rootkit check of the tables in guest memory."""
import textwrap

from gdbext import arch, errors
from gdbext.kernel import syscall_info, syscalls
from gdbext.render import Report, Text

from .base import KxCommand, add_cpu_option, word_format


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
        p.add_argument("--abi", default=None, help="the kernel's own ABI by default (64 on x86-64, 32 on i386), 32 (ia32) or x32")
        p.add_argument("--check", action="store_true",
                       help="compare the tables in guest memory with the vmlinux file")
        add_cpu_option(p)

    def run(self, args):
        # api.syscalls() / api.syscall() build the same SyscallTable.
        table = syscall_info.syscall_table(args.abi, which=args.which, check=args.check, cpu=args.cpu)
        data = table.to_dict()
        bits = arch.current().abi(table.abi).table_label
        return Report(data, self.render(data, bits, table.single))

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
            t.kv("handler", f"{e['handler']:{word_format()}}", width=10, note=e["symbol"])
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
            if c.get("reference") == "kallsyms":
                t.line(("dim", "  check: no vmlinux file (kx runs on the guest's kallsyms and BTF): "
                               "memory is compared with kallsyms only"))
            if c["clean"] and c.get("reference") == "kallsyms":
                t.line(("ok", f"  check (CPU {c['cpu']}): clean: {' and '.join(what)}: every entry is its"
                              " expected handler (kallsyms) inside kernel text"))
            elif c["clean"]:
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
               ("num", f"{e['handler']:{word_format()}}  "), ("dim", e["symbol"] or "?"))
        i = j + 1


def register():
    KxSyscalls()
