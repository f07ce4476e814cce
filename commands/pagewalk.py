"""kx pagewalk: the page-table walk of one virtual address, level by level."""
import gdb

from gdbext import errors
from gdbext.decoders.bits import MASK64
from gdbext.kernel import pagewalk, symbols
from gdbext.render import Report, Text

from .base import KxCommand, add_cpu_option, parse_int

SIZES = {1 << 12: "4 KiB", 1 << 21: "2 MiB", 1 << 30: "1 GiB"}


def resolve_address(text: str) -> int:
    """A number, a kernel symbol (KASLR-slid), or any gdb expression."""
    try:
        return int(text, 0) & MASK64
    except ValueError:
        pass
    hit = symbols.lookup(text.lstrip("&"))
    if hit is not None:
        return hit
    try:
        value = gdb.parse_and_eval(text)
        if value.type.strip_typedefs().code in (gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_FUNC):
            value = value.address
        return int(value) & MASK64
    except (gdb.error, ValueError, TypeError, OverflowError) as exc:
        raise errors.BadArgument(f"not an address, symbol or expression: {text!r} ({exc})") from None


class KxPagewalk(KxCommand):
    """Walk the page tables for one virtual address, level by level.
Usage: kx pagewalk ADDR [--cpu N] [--cr3 ROOT | --pid PID|COMM] [--json]

ADDR is a number, a symbol or a gdb expression ($rsp, &init_task).  Each
level shows its table index, the entry's physical address and value, and
its flags: P RW US PWT PCD A D PS G XD (NX) and the protection key; then the
physical address, the page size and the effective permissions, or the level
where the walk stops.  The tables are those the vCPU runs on, or ROOT (a
CR3 value), or a task's mm->pgd.  Under KPTI both PGDs of the pair are
walked: the user one maps user space and the entry trampolines only."""

    name = "pagewalk"

    def arguments(self, p):
        p.add_argument("address", metavar="ADDR")
        add_cpu_option(p)
        which = p.add_mutually_exclusive_group()
        which.add_argument("--cr3", type=parse_int, default=None, metavar="ROOT",
                           help="walk from this page-table root (a CR3 value)")
        which.add_argument("--pid", default=None, metavar="PID|COMM", help="walk the task's page tables")

    def run(self, args):
        address = resolve_address(args.address)
        if args.cr3 is not None and not 0 <= args.cr3 <= MASK64:
            raise errors.BadArgument(f"--cr3 {args.cr3:#x} is not a 64-bit value")
        data = pagewalk.walk(address, args.cpu, args.cr3, args.pid)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        sym = f" ({d['symbol']})" if d["symbol"] else ""
        t = Text().head(f"Page walk of {d['address']:#x}{sym} on CPU {d['cpu']}")
        if d["task"]:
            tk = d["task"]
            t.line(("dim", f"  page tables of pid {tk['pid']} \"{tk['comm']}\""
                    + (f"; {tk['note']}" if tk["note"] else "")))
        for v in d["views"]:
            now = f"  (the CPU's {d.get('root_register', 'CR3')} now)" if v["active"] else ""
            t.line(("key", f"{v['name']} page table"), ("num", f"  root {v['root']:#x}"), ("dim", now))
            _levels(t, v)
        return t


def _levels(t: Text, v) -> None:
    for lv in v["levels"]:
        where = f"  {lv['level']:<5} {lv['linux'] or '':<4}[{lv['index']:>3}]  @{lv['address']:#x}"
        t.add(where, "key").add(f"  {lv['value']:#018x}", "num")
        if not lv["bits"]["present"]:
            t.add("  not present\n", "bad")
            continue
        flags = " ".join(lv["flags"])
        t.add(f"  {flags}", "flag")
        if lv["next_table"] is not None:
            t.add(f"  -> {lv['next_table']:#x}", "dim")
        t.add("\n")
    if v["mapped"]:
        perms = ["user" if v["user"] else "kernel", "read-write" if v["writable"] else "read-only",
                 "exec" if v["executable"] else "no-exec"] + (["global"] if v["global_page"] else [])
        if v["pkey"]:
            perms.append(f"pkey {v['pkey']}")
        t.line(("ok", f"  => {v['phys']:#x}"), ("dim", f"  {SIZES.get(v['page_size'], v['page_size'])} page, "
                                                    + " ".join(perms)))
    else:
        f = v["fault"]
        why = (f"{f['level']} entry at {f['entry_address']:#x} = {f['entry_value']:#x} ({f['reason']})"
               if f else v["error"])
        t.line(("bad", f"  not mapped: {why}"))


def register():
    KxPagewalk()
