"""The arm64 vDSO as the kernel keeps it (arch/arm64/kernel/vdso.c, 6.1 and
6.12): vdso_info[VDSO_ABI_AA64] and, with CONFIG_COMPAT_VDSO,
vdso_info[VDSO_ABI_AA32] (struct vdso_abi_info: name, vdso_code_start,
vdso_code_end, vdso_pages, dm (the data mapping, "[vvar]") and cm (the
code mapping, "[vdso]")).  mm->context.vdso is the text's base; a compat
task (TIF_32BIT) has the AArch32 image, and its [sigpage] at
mm->context.sigpage (the sigreturn trampolines)."""
from typing import Dict, Optional

from gdbext import errors, machine
from gdbext.kernel import symbols, types

VDSO_ABIS = (("64", "vdso_info[VDSO_ABI_AA64]"), ("32", "vdso_info[VDSO_ABI_AA32]"))
TIF_32BIT = 22      # arch/arm64/include/asm/thread_info.h (6.1, 6.12)
PAGE = 4096


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
    out = {}
    for index in range(len(VDSO_ABIS)):
        entry = _entry(index)
        if entry is None:
            return out
        for member in ("dm", "cm"):
            try:
                mapping = _u64(entry + types.offsetof("struct vdso_abi_info", member), cpu)
                if not mapping:
                    continue
                name_ptr = _u64(mapping + types.offsetof("struct vm_special_mapping", "name"), cpu)
                out[mapping] = machine.read_kernel(name_ptr, 16, cpu).split(b"\0", 1)[0].decode("ascii", "replace")
            except errors.KxError:
                continue
    return out
