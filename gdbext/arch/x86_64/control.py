"""One x86-64 vCPU's control registers with what they mean here: CR0, CR2,
CR3 (PCID, and which half of a KPTI PGD pair it is), CR4, CR8, EFER and
XCR0.  `kx cr` prints this report (docs/interface.md).

Sources: QEMU's gdbstub exposes cr0, cr2, cr3, cr4, cr8 and efer (as does
its monitor's `info registers`); neither exposes XCR0 (QEMU 7.2).  XCR0 is
then the value the kernel wrote: fpu__init_cpu_xstate() does
xsetbv(XCR_XFEATURE_ENABLED_MASK, fpu_user_cfg.max_features) on every CPU
(arch/x86/kernel/fpu/xstate.c, 6.1 and 6.12), marked source "kernel".
"""
from typing import Dict, Optional

from gdbext import arch, errors
from gdbext import machine
from gdbext.arch.x86_64 import cpu_setup
from gdbext.decoders import control_regs as crdec
from gdbext.decoders import paging
from gdbext.kernel import symbols, types

X86_FEATURE_PTI = 7 * 32 + 11     # arch/x86/include/asm/cpufeatures.h (6.1, 6.12)
CR4_PCIDE = 1 << 17
CR4_OSXSAVE = 1 << 18


def pti_enabled(cpu: int) -> Optional[bool]:
    """X86_FEATURE_PTI in boot_cpu_data (set by pti_init()), or None when
    kx cannot tell (no symbol or type, the wrong vmlinux)."""
    try:
        words = cpu_setup.boot_cpu_capabilities(cpu)
    except errors.KxError:
        return None
    if not words or len(words) <= X86_FEATURE_PTI // 32:
        return None
    return bool(words[X86_FEATURE_PTI // 32] >> (X86_FEATURE_PTI % 32) & 1)


# Before 6.0 XCR0 = xfeatures_mask_all & XFEATURE_MASK_USER_SUPPORTED
# (5.10: arch/x86/include/asm/fpu/xstate.h); the bit of each name comes from
# the kernel's own enum xfeature.
_USER_SUPPORTED_5_10 = ("XFEATURE_FP", "XFEATURE_SSE", "XFEATURE_YMM", "XFEATURE_OPMASK",
                        "XFEATURE_ZMM_Hi256", "XFEATURE_Hi16_ZMM", "XFEATURE_PKRU",
                        "XFEATURE_BNDREGS", "XFEATURE_BNDCSR")


def kernel_xcr0(cpu: int) -> Optional[int]:
    """What the kernel set XCR0 to (xsetbv): fpu_user_cfg.max_features
    (6.0+), or xfeatures_mask_all's user part (5.x); None if unknown."""
    try:
        address = symbols.lookup("fpu_user_cfg")
        if address is not None and types.has_member("struct fpu_state_config", "max_features"):
            off = types.offsetof("struct fpu_state_config", "max_features")
            return int.from_bytes(machine.read_kernel(address + off, 8, cpu), "little")
        address = symbols.lookup("xfeatures_mask_all")
        bits = dict(types.enum_values("enum xfeature") or {})
        if address is None or not all(n in bits for n in _USER_SUPPORTED_5_10):
            return None
        mask = sum(1 << bits[n] for n in _USER_SUPPORTED_5_10)
        return int.from_bytes(machine.read_kernel(address, 8, cpu), "little") & mask
    except errors.KxError:
        return None


def cr3_view(cr3: int, pcide: bool, pti: Optional[bool]) -> Dict:
    """CR3's fields, and under KPTI which PGD of the pair it selects and
    where the other one is.  PTI allocates an 8 KiB PGD pair: the kernel
    half first, the user half at +4 KiB, so bit 12
    (PTI_USER_PGTABLE_BIT) tells them apart; with PCID the user PCID has
    bit 11 set (arch/x86/entry/calling.h, asm/processor-flags.h)."""
    out = dict(paging.decode_cr3(cr3, pcide))
    out.update(value=cr3, pcide=pcide, pti=pti, view=None, kernel_cr3=None, user_cr3=None,
               kernel_pgd=None, user_pgd=None)
    if pti:
        user = out["pti_user_pgd"]
        kernel_cr3 = paging.kernel_pgd_from_user_cr3(cr3) if user else cr3
        user_cr3 = cr3 if user else (paging.user_cr3_from_kernel_cr3(cr3) if pcide
                                     else cr3 | 1 << paging.PTI_USER_PGTABLE_BIT)
        out.update(view="user" if user else "kernel", kernel_cr3=kernel_cr3, user_cr3=user_cr3,
                   kernel_pgd=paging.cr3_pgd_address(kernel_cr3), user_pgd=paging.cr3_pgd_address(user_cr3))
    elif pti is False:
        out["view"] = "only"   # one PGD for kernel and user
        out["kernel_pgd"] = out["pgd"]
    out["root_name"] = "PGD"
    return out


def _row(name: str, value: Optional[int], source: Optional[str], decoded: Optional[Dict], note: str = "") -> Dict:
    row = {"name": name, "value": value, "source": source if value is not None else None,
           "set": [], "clear": [], "unknown": [], "bits": [], "note": note}
    if decoded and value is not None:
        row.update({k: decoded[k] for k in ("set", "clear", "unknown", "bits")})
        row["fields"] = {k: v for k, v in decoded.items() if k not in ("set", "clear", "unknown", "bits")}
    return row


def control_registers(cpu: int = None) -> Dict:
    cpu = machine.check_cpu(cpu)
    regs = machine.registers(cpu)
    cr0, cr4, efer = regs.get("cr0"), regs.get("cr4"), regs.get("efer")
    rows = [_row("CR0", cr0, "gdbstub", crdec.decode_cr0(cr0) if cr0 is not None else None)]
    cr2 = regs.get("cr2")
    rows.append(_row("CR2", cr2, "gdbstub", None, "the linear address of the last page fault"
                     + (f" ({symbols.format_address(cr2)})" if cr2 and symbols.format_address(cr2) else "")))
    cr3 = regs.get("cr3")
    rows.append(_row("CR3", cr3, "gdbstub", None))
    a = arch.current()
    rows.append(_row("CR4", cr4, "gdbstub", crdec.decode_cr4(cr4, a.cr4_bits) if cr4 is not None else None))
    cr8 = regs.get("cr8")
    rows.append(_row("CR8", cr8, "gdbstub", crdec.decode_cr8(cr8) if cr8 is not None else None,
                     a.cr8_note))
    rows.append(_row("EFER", efer, "gdbstub", crdec.decode_efer(efer) if efer is not None else None))
    rows.append(_xcr0_row(cpu, cr4))
    warnings = []
    if None not in (cr0, cr4, efer):
        warnings += crdec.consistency(cr0, cr4, efer)
    view = a.cr3_view(cr3, cr4 or 0, cpu) if cr3 is not None else None
    return {"cpu": cpu, "registers": rows, "cr3": view, "warnings": warnings}


def _xcr0_row(cpu: int, cr4: Optional[int]) -> Dict:
    if cr4 is not None and not cr4 & CR4_OSXSAVE:
        return _row("XCR0", None, None, None, "CR4.OSXSAVE is clear: XCR0 is not in use")
    value = kernel_xcr0(cpu)
    if value is None:
        return _row("XCR0", None, None, None, "not readable: the gdbstub and QEMU's monitor do not expose "
                    "XCR0, and the kernel's fpu_user_cfg.max_features could not be read")
    return _row("XCR0", value, "kernel", crdec.decode_xcr0(value),
                "what the kernel wrote with xsetbv (fpu_user_cfg.max_features, or xfeatures_mask_all's "
                "user features before 6.0); the gdbstub does not expose XCR0")
