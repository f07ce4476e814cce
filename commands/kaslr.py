"""kx kaslr: the KASLR slide, where it came from, and whether the vmlinux is
the running kernel."""
from gdbext import arch, errors
from gdbext.decoders import kaslr as kdec
from gdbext.kernel import kaslr
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand


class KxKaslr(KxCommand):
    """Find the KASLR slide, relocate the symbols, and check the vmlinux.
Usage: kx kaslr [--no-lstar] [--json]

The text slide is taken only when at least two independent sources agree:
the IDT's exception handlers against their symbols, IA32_LSTAR against
entry_SYSCALL_64 (rdmsr injection, ring 0 only; --no-lstar skips it), and
the vmlinux's own linux_banner and build ID found in memory at symbol +
slide.  The slide must be a multiple of the kernel alignment (2 MiB).  kx
then relocates gdb's symbols (add-symbol-file -o SLIDE; zero-based per-cpu
sections stay at 0) and its own, so `break`, `info symbol` and every kx
command work.  The same check runs by itself at the first stop after
`target remote`.  Also shown: page_offset_base, vmalloc_base, vmemmap_base
(RANDOMIZE_MEMORY), phys_base and the physical load address of _text.

If the vmlinux is not the running kernel (its banner or build ID is not in
memory where the guest's IDT puts the kernel), this says so, and kx refuses
the commands that depend on kernel offsets until the right vmlinux is
loaded."""

    name = "kaslr"
    needs_kernel_match = False

    def arguments(self, p):
        p.add_argument("--no-lstar", action="store_true", help="do not inject rdmsr to read IA32_LSTAR")

    def run(self, args):
        machine.require_stopped()
        det = kaslr.ensure(force=True, inject=not args.no_lstar)
        if det is None:
            raise errors.NoTarget()
        warnings = []
        if det.mismatch:
            warnings.append(det.mismatch)
        for name, value in det.sources.items():
            if value is not None and det.slide is not None and value != det.slide:
                warnings.append(f"source {name} says {value:#x}, not {det.slide:#x}")
        if det.slide is None and det.match is not False:
            warnings.append("no two sources agree on a slide: kx's symbols are not relocated")
        data = {"text_slide": det.slide, "applied": det.applied,
                "match": det.match, "mismatch": det.mismatch,
                "sources": dict(det.sources),
                "source_notes": {n: det.notes[n] for n in det.sources if n in det.notes},
                "agreeing": det.vote.agreeing,
                **det.report,
                "min_alignment": arch.current().kaslr_align,
                "vmlinux": det.path, "banner": det.file_banner, "build_id": det.build_id,
                "memory_banner": det.memory_banner if det.match is False else None,
                "gdb_slide": det.gdb_slide,
                "check_ms": round(det.check_seconds * 1000, 1),
                "apply_ms": round(det.apply_seconds * 1000, 1)}
        if det.match is not False and det.slide is not None:
            data.update(kaslr.memory_layout(det, warnings))
        data["warnings"] = warnings
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text()
        if d["match"] is False:
            t.add("kx kaslr: THE VMLINUX DOES NOT MATCH THE RUNNING KERNEL\n", "bad")
        if d["text_slide"] is None:
            t.head("KASLR text slide: unknown")
        else:
            t.head(f"KASLR text slide: {d['text_slide']:#x}"
                   + (" (applied: gdb's and kx's symbols are relocated)" if d["applied"]
                      else " (NOT applied to gdb's symbols)"))
        for name, value in d["sources"].items():
            note = d["source_notes"].get(name)
            t.kv(name, f"{value:#x}" if value is not None else "-",
                 "num" if value is not None else "dim", note=None if value is not None else note)
        t.kv("vmlinux", d["vmlinux"], "str")
        t.kv("banner", kdec.banner_summary(d["banner"]) if d["banner"] else "?", "str",
             note="matches memory" if d["match"] else ("NOT in memory" if d["match"] is False else "unverified"))
        if d["build_id"]:
            t.kv("build id", d["build_id"], "str")
        for label, value, note, width in arch.current().kaslr_layout_rows(d):
            t.kv(label, value, note=note, width=width)
        t.add(f"  check {d['check_ms']} ms", "dim")
        if d["apply_ms"]:
            t.add(f", relocation {d['apply_ms']} ms", "dim")
        t.add("\n")
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    kaslr.install_hooks()
    KxKaslr()
