"""kx vdso: a task's vDSO and vvar, the kernel's own image, and the vsyscall page."""
from gdbext import arch, errors
from gdbext.kernel import tasks
from gdbext.kernel import vdso as kvdso
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option
from .task import task_completions


class KxVdso(KxCommand):
    """Show a task's vDSO and vvar, check the image against the kernel's, and the vsyscall page.
Usage: kx vdso [PID|COMM|ADDR] [--cpu N] [--json]

Without an argument: the task running on the selected vCPU (or --cpu N), if
it is a user task.  kx finds mm->context.vdso and its image (vdso_image_64 /
vdso_image_32; vdso64_image / vdso32_image in 7.2), reads the mapped pages
through the task's own page tables (the task need not be running), parses
the ELF (dynamic symbols, versions, build-id, the "Linux" version note) and
lists each function at its address in that task.  The bytes are compared
with the kernel's image->data; pages the task never touched are taken from
it.  The [vdso]/[vvar] VMAs come from the mm's maple tree (7.2 adds
[vvar_vclock]).  For a 32-bit task it decodes __kernel_vsyscall's trampoline
(sysenter, syscall or int $0x80) and compares it with the CPU features.
Last, the vsyscall page at 0xffffffffff600000: vsyscall_mode (emulate,
xonly, none) and its three legacy entries (+0, +0x400, +0x800)."""

    name = "vdso"
    completions = staticmethod(task_completions)

    def arguments(self, p):
        p.add_argument("task", nargs="?", default=None, metavar="PID|COMM|ADDR",
                       help="pid (decimal), comm, or task_struct address (default: current user task)")
        add_cpu_option(p)

    def run(self, args):
        cpu = machine.check_cpu(args.cpu)
        task = tasks.find(args.task, cpu)
        if args.task is None:
            why = kvdso.no_vdso_reason(task)
            if why:
                raise errors.BadArgument(f"the current task on CPU {cpu} is not a user task ({why}): "
                                         "give a PID, e.g. `kx vdso 1`")
        data = kvdso.report(task, cpu)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        a = arch.current()
        abi = next((label for _, name, label in a.vdso_images if name == d["abi"]), d["abi"])
        t = Text().head(f"vDSO of pid {d['pid']} \"{d['comm']}\"  ({abi}, task {d['task']:#x})")
        k = d["kernel_image"]
        t.kv("vdso", f"{d['base']:#x} .. {d['end']:#x}", note=f"{d['size']} bytes, mm->context.vdso")
        start = k["sym_vvar_start"]
        how = f"sym_vvar_start {start:#x}" if start is not None else "the [vvar*] VMAs below the text"
        t.kv("vvar", f"{d['vvar']:#x} .. {d['base']:#x}", note=f"{d['vvar_size'] // 4096} pages ({how})")
        for key, v in d["vmas"].items():
            if v:
                t.kv(f"VMA {v['special'] or key}", f"{v['start']:#x}-{v['end']:#x}",
                     note=f"{' '.join(v['flag_names'])}  (vm_area_struct {v['address']:#x})")
        e = d["elf"]
        t.kv("image", f"ELF{e['class']} {e['machine']}", kind="plain",
             note=f"{e['soname']}, versions {', '.join(e['versions'])}, Linux note {e['linux_version_text']}"
                  + (f", build salt {e['build_salt']}" if e["build_salt"] else ""))
        t.kv("build-id", d["build_id"] or "none", kind="str")
        present = sum(1 for p in d["pages"] if p["present"])
        note = f"{k['symbol']} at {k['address']:#x}, data {k['data']:#x}; {present}/{len(d['pages'])} pages faulted in"
        t.kv("kernel copy", "matches" if d["image_matches_kernel"] else f"MISMATCH ({d['mismatched_bytes']} bytes)",
             kind="ok" if d["image_matches_kernel"] else "bad", note=note)
        f = d["file_image"]
        if f:
            t.kv("vmlinux copy", "same build-id" if f["build_id_matches"] else "DIFFERENT build-id",
                 kind="ok" if f["build_id_matches"] else "bad",
                 note=f"{f['differing_bytes']} bytes differ: the alternatives init_vdso_image() patched at boot")
        t.line(("head", "  symbols"))
        order = {n: i for i, n in enumerate(a.vdso_entry_points)}
        for s in sorted(d["symbols"], key=lambda s: (order.get(s["name"], len(order)), s["address"])):
            t.line(f"    {s['address']:#018x}  ", ("sym", f"{s['name']:<26}"),
                   ("dim", f" +{s['offset']:#06x} {s['size']:>5} {s['bind']:<6} {s['version'] or ''}"))
        own = a.vdso_text(d)
        if own is not None:
            t.extend(own)
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxVdso()
