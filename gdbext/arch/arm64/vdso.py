"""The arm64 vDSO as the kernel keeps it (arch/arm64/kernel/vdso.c, 6.1 and
6.12): vdso_info[VDSO_ABI_AA64] and, with CONFIG_COMPAT_VDSO,
vdso_info[VDSO_ABI_AA32] (struct vdso_abi_info: name, vdso_code_start,
vdso_code_end, vdso_pages, dm (the data mapping, "[vvar]") and cm (the
code mapping, "[vdso]")).  mm->context.vdso is the text's base; a compat
task (TIF_32BIT) has the AArch32 image, and its [sigpage] at
mm->context.sigpage (the sigreturn trampolines, __aarch32_sigret_code_start
.. _end copied to the page's start) and, with CONFIG_KUSER_HELPERS, the
[vectors] page at AARCH32_VECTORS_BASE (the kuser helpers,
__kuser_helper_start .. _end at the page's end): aarch32_vdso_maps[] and
aarch32_setup_additional_pages() in arch/arm64/kernel/vdso.c.
"""
from typing import Dict, Optional

from gdbext import errors, machine
from gdbext.kernel import symbols, types

VDSO_ABIS = (("64", "vdso_info[VDSO_ABI_AA64]"), ("32", "vdso_info[VDSO_ABI_AA32]"))
TIF_32BIT = 22      # arch/arm64/include/asm/thread_info.h (6.1, 6.12)
PAGE = 4096
AARCH32_VECTORS_BASE = 0xFFFF0000      # arch/arm64/include/asm/processor.h
# enum aarch32_map: [vectors], [sigpage], [vvar], [vdso] (vdso.c).
AARCH32_MAPS = 4


def _entry(index: int) -> Optional[int]:
    base = symbols.lookup("vdso_info")
    if base is None:
        return None
    return base + index * types.sizeof("struct vdso_abi_info")


def _u64(address: int, cpu: int) -> int:
    return int.from_bytes(machine.read_kernel(address, 8, cpu), "little")


def kernel_image(task, cpu: int):
    from gdbext.kernel.vdso import KernelImage
    compat = bool((task.ti_flags or 0) >> TIF_32BIT & 1)
    index = 1 if compat else 0
    entry = _entry(index)
    if entry is None:
        raise errors.MissingSymbol("vdso_info")
    start = _u64(entry + types.offsetof("struct vdso_abi_info", "vdso_code_start"), cpu)
    end = _u64(entry + types.offsetof("struct vdso_abi_info", "vdso_code_end"), cpu)
    if not start or not 0 < end - start <= 1 << 20:
        raise errors.KxError(f"{VDSO_ABIS[index][1]} has no image ({start:#x}..{end:#x}): "
                             "a kernel without CONFIG_COMPAT_VDSO?")
    size = (end - start + PAGE - 1) & ~(PAGE - 1)
    fields = {"sym_vvar_start": None}
    return KernelImage(name=VDSO_ABIS[index][1], abi=VDSO_ABIS[index][0], address=entry, data=start,
                       size=size, fields=fields)


def special_mappings(cpu: int) -> Dict[int, str]:
    mappings = []
    for index in range(len(VDSO_ABIS)):
        entry = _entry(index)
        if entry is None:
            break
        for member in ("dm", "cm"):
            try:
                mappings.append(_u64(entry + types.offsetof("struct vdso_abi_info", member), cpu))
            except errors.KxError:
                continue
    maps = symbols.lookup("aarch32_vdso_maps")
    if maps is not None:
        size = types.sizeof("struct vm_special_mapping")
        mappings += [maps + i * size for i in range(AARCH32_MAPS)]
    out = {}
    for mapping in filter(None, mappings):
        try:
            name_ptr = _u64(mapping + types.offsetof("struct vm_special_mapping", "name"), cpu)
            out[mapping] = machine.read_kernel(name_ptr, 16, cpu).split(b"\0", 1)[0].decode("ascii", "replace")
        except errors.KxError:
            continue
    return out


def report(v, cpu: int) -> Dict:
    """`kx vdso`'s compat pages for a task's vDSO (kernel.vdso.TaskVdso):
    its [sigpage] and kuser-helper [vectors], each with its VMA, physical
    page and whether it holds the kernel's code; None for a 64-bit task."""
    if v.kernel_image.abi != "32":
        return {"sigpage": None, "kuser_helpers": None}
    from gdbext.kernel import vdso as kvdso
    root = kvdso.task_page_table(v.mm_fields["pgd"], cpu)
    sigpage = _u64(v.mm + types.offsetof("struct mm_struct", "context.sigpage"), cpu)
    out = {"sigpage": _special_page(v, root, sigpage, "__aarch32_sigret_code", False, cpu) if sigpage else None,
           "kuser_helpers": None}
    if symbols.lookup("__kuser_helper_start") is not None:
        out["kuser_helpers"] = _special_page(v, root, AARCH32_VECTORS_BASE, "__kuser_helper", True, cpu)
    for key, page in out.items():
        if page is not None and page["matches_kernel"] is False:
            v.warnings.append(f"the task's {page['vma_name'] or key} page at {page['address']:#x} does not hold "
                              f"the kernel's {page['code']}_start.._end")
    return out


def _special_page(v, root: int, address: int, code: str, at_end: bool, cpu: int) -> Dict:
    """One compat special page: its VMA (named by aarch32_vdso_maps), its
    physical page through the task's tables, and whether the kernel's code
    (`code`_start.._end, at the page's start or end) is what it holds."""
    from gdbext.kernel import vdso as kvdso
    start, end = symbols.lookup(code + "_start"), symbols.lookup(code + "_end")
    kernel = machine.read_kernel(start, end - start, cpu) if start is not None and end is not None else None
    (_off, phys, data), = machine.read_pages(root, address, PAGE, cpu)
    vma = None
    if v.mm_fields.get("ma_root") is not None:
        found = kvdso.find_vma(v.mm_fields["ma_root"], address, cpu)
        vma = kvdso.read_vma(found, cpu, special_mappings(cpu)) if found else None
    held = None
    if data is not None and kernel is not None:
        held = (data[PAGE - len(kernel):] if at_end else data[:len(kernel)]) == kernel
    return {"address": address, "phys": phys, "present": phys is not None, "code": code,
            "code_address": start, "code_size": len(kernel) if kernel is not None else None,
            "matches_kernel": held, "vma": vma.to_dict() if vma else None,
            "vma_name": vma.special if vma else None}


def text(data: Dict):
    """The text lines of report()'s keys, or None for a 64-bit task."""
    from gdbext.render import Text
    pages = [(label, data.get(key)) for key, label in (("sigpage", "sigpage"), ("kuser_helpers", "kuser"))]
    if not any(page for _label, page in pages):
        return None
    t = Text()
    for label, page in pages:
        if page is None:
            continue
        phys = f"phys {page['phys']:#x}" if page["phys"] is not None else "not faulted in"
        held = {True: "holds", False: "does NOT hold", None: "?"}[page["matches_kernel"]]
        t.line(("key", f"  {label:<14}"), f"{page['address']:#010x}  {page['vma_name'] or 'no VMA'}  {phys}  "
               f"{held} {page['code']}_start.._end ({page['code_size']} bytes)")
    return t
