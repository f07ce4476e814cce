"""i386 registers as kx presents them: pt_regs for `kx regs` and the
unwinder, the live registers at an entry stub, QEMU's `g` layout.

The argument registers carry the names of the i386 syscall ABI (ebx ecx
edx esi edi ebp, arch/x86/entry/entry_32.S); the segment slots are named
after the 32-bit kernel's GDT (decoders/ptregs32.py)."""
from typing import Dict, List, Optional, Tuple

from gdbext import errors
from gdbext.arch.base import RawCall
from gdbext.decoders.msr import decode_rflags
from gdbext.decoders.ptregs32 import PT_REGS32_FIELDS, selector32_name
from gdbext.decoders.rsp_packets import RegisterLayout
from gdbext.decoders.syscall_args import ENOSYS
from gdbext.decoders.bits import MASK32

NAMES = {"ax": "eax", "bx": "ebx", "cx": "ecx", "dx": "edx", "si": "esi", "di": "edi",
         "bp": "ebp", "ip": "eip", "sp": "esp"}
# pt_regs member -> gdb's i386 register (the unwinder's saved registers)
GDB_NAMES = {**NAMES, "flags": "eflags", "cs": "cs", "ss": "ss", "ds": "ds", "es": "es", "fs": "fs", "gs": "gs"}
USER_MODES = {"32": "32-bit"}
ARGUMENTS = ("bx", "cx", "dx", "si", "di", "bp")
_LAST = ("cs", "ss", "flags", "orig_ax")

# QEMU's i386 gdbstub `g` reply (gdb's `maint print remote-registers`,
# QEMU 7.2): name -> (remote number, offset, size).
_G_ORDER = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags",
            "cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base", "k_gs_base",
            "cr0", "cr2", "cr3", "cr4", "cr8", "efer")
QEMU_G_LAYOUT: RegisterLayout = {n: (i, 4 * i, 4) for i, n in enumerate(_G_ORDER)}


def report(pt) -> Tuple[Dict[str, object], List[str]]:
    """(`kx regs`'s cs, ss and rflags keys, warnings) for a PtRegs32."""
    warnings = []
    if pt.mode not in USER_MODES:
        warnings.append(f"CS {pt.cs:#x} is not the user code segment: this is not a user-mode frame")
    data = {"cs": {"selector": pt.cs, "name": selector32_name(pt.cs), "mode": pt.mode},
            "ss": {"selector": pt.ss, "name": selector32_name(pt.ss)},
            "segments": {s: {"selector": getattr(pt, s), "name": selector32_name(getattr(pt, s))}
                         for s in ("ds", "es", "fs", "gs")},
            "rflags": decode_rflags(pt.flags)["set"]}
    return data, warnings


def rows(d: dict) -> List[Tuple[str, str, Optional[str]]]:
    """The register lines of `kx regs`'s text view: (name, value, note)."""
    r, out = d["regs"], []
    for name in PT_REGS32_FIELDS:
        if name in _LAST or name in ("ds", "es", "fs", "gs"):
            continue
        note = None
        if d["syscall"] and name in ARGUMENTS:
            note = f"argument {ARGUMENTS.index(name) + 1}"
        if d["syscall"] and name == "ax" and r["ax"] & MASK32 == -ENOSYS & MASK32:
            note = "-ENOSYS: entry's placeholder until the handler returns"
        out.append((NAMES.get(name, name), f"{r[name] & MASK32:#010x}", note))
    out.append(("orig_ax", f"{r['orig_ax']:#x}" if r["orig_ax"] >= 0 else str(r["orig_ax"]),
                "the syscall number (eax at the int $0x80 / sysenter)" if r["orig_ax"] >= 0 else None))
    out.append(("eflags", f"{r['flags']:#x}", " ".join(d["rflags"])))
    out.append(("cs", f"{r['cs']:#x}", f"{d['cs']['name'] or '?'}: {USER_MODES.get(d['mode'], d['mode'])}"))
    out.append(("ss", f"{r['ss']:#x}", d["ss"]["name"]))
    for seg in ("ds", "es", "fs", "gs"):
        out.append((seg, f"{r[seg]:#x}", d.get("segments", {}).get(seg, {}).get("name")))
    return out


def live_call(arch, stub, regs: Dict[str, int], view) -> RawCall:
    """The call at an i386 entry stub from the live registers: eax = nr,
    ebx ecx edx esi edi ebp."""
    from gdbext.arch.i386.abi import ABI_I386 as a
    values = [regs[n] & MASK32 for n in a.arg_regs]
    args = list(zip(a.arg_regs, values))
    call = RawCall("32", arch.nr_from_raw(a, regs["eax"]), args, stub=stub.name)
    if stub.name == "entry_INT80_32":
        from gdbext.kernel import symbols
        if regs["eip"] == symbols.lookup(stub.name):
            # The gate pushed EIP, CS, EFLAGS, ESP, SS; %esp points at EIP
            # (SDM Vol.3A 6.12.1).
            frame = view.read_kernel(regs["esp"], 12)
            call.return_ip = int.from_bytes(frame[0:4], "little")
            call.flags = int.from_bytes(frame[8:12], "little")
        else:
            call.notes.append("past the stub's first instruction the IRET frame has moved: the return "
                              "address is in pt_regs once they are built")
    elif stub.name == "entry_SYSENTER_32":
        # __kernel_vsyscall pushed ecx, edx, ebp and moved esp into ebp
        # before sysenter, which saves no stack pointer: ebp is the user esp
        # and argument 6 is the ebp pushed there (vdso32/system_call.S,
        # common.c do_fast_syscall_32).
        call.notes.append("SYSENTER saves no return address: the kernel returns to the vDSO's "
                          "__kernel_vsyscall landing pad")
        try:
            arg6 = int.from_bytes(view.read_user(values[5], 4), "little")
        except errors.KxError:
            call.notes.append("argument 6 is on the user stack, which is not readable here")
            arg6 = 0
        call.args = args[:5] + [("[ebp]", arg6)]
    return call


def vdso_text(d: dict):
    from gdbext.arch.x86_64 import vdso as x86_vdso
    return x86_vdso.trampoline_text(d.get("kernel_vsyscall"))
