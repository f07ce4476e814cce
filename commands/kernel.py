# SPDX-License-Identifier: GPL-2.0-or-later
"""kx kernel: where kx's knowledge of the kernel comes from, and loading the
running kernel's own symbols and types when there is no vmlinux."""
from gdbext.kernel import guest_kernel, guest_session, kaslr
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand


class KxKernel(KxCommand):
    """Say where kx's kernel symbols and types come from; load them from the guest.
Usage: kx kernel [--load] [--json]

With a vmlinux loaded (`file vmlinux`), its ELF symbols and DWARF are the
source.  With none, kx reads the running kernel's own description of itself:
kallsyms (found in the image after the IDT's handlers, checked against
VMCOREINFO's kallsyms symbols on 6.0+) and the BTF blob (__start_BTF ..
__stop_BTF).  It builds a symbol file from them (the symbols at their
addresses, BTF's types compiled with gcc -g) and makes it gdb's symbol file,
so `p $kx_current()->comm`, `ptype struct pt_regs` and kx's commands work.
The result is cached per build ID under $KX_CACHE (default ~/.cache/kx)
/guest-kernels; `set kx guest-kernel off` stops the automatic load at the
first stop.  --load loads it now (replacing gdb's symbol file)."""

    name = "kernel"
    needs_kernel_match = False
    loads_guest_kernel = False   # it loads (and reports) itself

    def arguments(self, p):
        p.add_argument("--load", action="store_true",
                       help="read the guest's kallsyms and BTF and load them as gdb's symbol file")

    def run(self, args):
        machine.require_stopped()
        gk = guest_session.current()
        if args.load or (gk is None and not guest_session.gdb_has_kernel_file()):
            gk = guest_session.attach()
        if gk is None:
            det = kaslr.current()
            data = {"source": "vmlinux", "vmlinux": det.path if det else None,
                    "facts": {"symbols": "the vmlinux's ELF symbol table", "types": "the vmlinux's DWARF",
                              "kaslr": "kx kaslr's vote (IDT, LSTAR, banner, build ID)"}}
        else:
            data = {"source": "guest", "symbol_file": guest_kernel.symbol_file(gk), "build_id": gk.build_id,
                    "text": gk.text, "symbols": len(gk.symbols), "btf": gk.btf_path is not None,
                    "cached": gk.cached, "facts": dict(gk.sources), "seconds": dict(gk.seconds)}
        if data["source"] == "guest" and not data["btf"]:
            data["warning"] = ("this kernel has no BTF (CONFIG_DEBUG_INFO_BTF): symbols work, types do not "
                               "(kx task, ps, event, trace need them)")
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text()
        if d["source"] == "vmlinux":
            t.head(f"kernel symbols and types: the vmlinux {d['vmlinux'] or '(loaded in gdb)'}")
        else:
            t.head(f"kernel symbols and types: the running kernel itself (no vmlinux), build ID {d['build_id']}")
            t.kv("symbol file", d["symbol_file"], "str")
            t.kv("_text", f"{d['text']:#x}", "num")
            t.kv("symbols", str(d["symbols"]), "num")
        for fact, where in d["facts"].items():
            t.kv(fact, where, "str")
        if d.get("seconds"):
            t.add("  " + ", ".join(f"{k} {v:.2f} s" for k, v in d["seconds"].items()) + "\n", "dim")
        if d.get("warning"):
            t.warn(d["warning"])
        return t


def register():
    guest_session.install_hooks()
    KxKernel()
