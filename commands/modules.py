"""kx modules: the loaded kernel modules, and their symbols into gdb."""
from gdbext.decoders import modules as mdec
from gdbext.kernel import modules
from gdbext.render import Report, Text

from .base import KxCommand

SECTIONS_WITHOUT_ELFTOOLS = (".text", ".data", ".bss", ".rodata")


class KxModules(KxCommand):
    """List the loaded kernel modules; load their symbols into gdb.
Usage: kx modules [--load-symbols DIR] [--json]

Walks the kernel's `modules` list: name, base (where /proc/modules says it
is), size, state (live, coming, going), taint letters, the memory blocks
(core_layout up to 6.3, mem[] from 6.4) and the section addresses of
/sys/module/NAME/sections.  Addresses in a module print as module+offset
in every kx command.  --load-symbols DIR finds NAME.ko under DIR (for
Debian: /usr/lib/debug/lib/modules/RELEASE from the -dbg package) and adds
it to gdb at the live section addresses (add-symbol-file with .text, .data,
.bss, ...), so KASLR needs nothing more; run it again after a module is
reloaded."""

    name = "modules"

    def arguments(self, p):
        p.add_argument("--load-symbols", default=None, metavar="DIR",
                       help="add-symbol-file each module's NAME.ko found under DIR")

    def run(self, args):
        from gdbext.machine import symbol_files
        mods = modules.all_modules()
        files = modules.find_files(args.load_symbols) if args.load_symbols else {}
        loaded, missing, warnings = [], [], []
        for m in mods:
            m["sections"] = modules.sections(m["address"])
            path = files.get(mdec.normalize(m["name"]))
            if args.load_symbols and path is None:
                missing.append(m["name"])
            elif path:
                present = modules.file_sections(path) or SECTIONS_WITHOUT_ELFTOOLS
                try:
                    symbol_files.add_module(path, mdec.add_symbol_file_args(path, m["sections"], present))
                    loaded.append(m["name"])
                except (ValueError, Exception) as exc:  # KxError or a missing .text
                    warnings.append(f"{m['name']}: {exc}")
        known = symbol_files.loaded_files()
        for m in mods:
            m["symbol_file"] = known.get(m["name"] + ".ko") or known.get(mdec.normalize(m["name"]) + ".ko")
        data = {"modules": mods, "warnings": warnings,
                "load_symbols": {"dir": args.load_symbols, "loaded": loaded, "missing": missing}
                if args.load_symbols else None}
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"{len(d['modules'])} modules")
        for m in d["modules"]:
            t.add(f"  {m['name']:<20}", "sym").add(f" {m['base']:#018x}", "num").add(f" {m['size']:>8}")
            t.add(f"  {m['state']:<8}").add(f" {m['taint'] or '-':<4}", "bad" if m["taint"] else "dim")
            t.add(f"  {m['symbol_file'] or '(no symbol file)'}\n", "dim")
        ls = d["load_symbols"]
        if ls:
            t.line(("dim", f"symbols loaded from {ls['dir']}: {', '.join(ls['loaded']) or 'none'}"
                    + (f"; no file for {', '.join(ls['missing'])}" if ls["missing"] else "")))
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxModules()
