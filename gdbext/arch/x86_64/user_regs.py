"""x86-64 pt_regs as `kx regs` and the entry-frame unwinder present them:
register names per mode, CS/SS selectors, RFLAGS by name, and the notes
that SYSCALL's register use explains (SDM Vol.2B SYSCALL: RCX = return
RIP, R11 = RFLAGS)."""
from typing import Dict, List, Optional, Tuple

from gdbext.decoders import descriptors
from gdbext.decoders.bits import MASK32, MASK64
from gdbext.decoders.msr import decode_rflags
from gdbext.decoders.ptregs import PT_REGS_FIELDS
from gdbext.decoders.syscall_args import ENOSYS

# pt_regs member -> the register's name in each user mode, for the text view.
X86_64_NAMES = {"ax": "rax", "bx": "rbx", "cx": "rcx", "dx": "rdx", "si": "rsi", "di": "rdi",
                "bp": "rbp", "ip": "rip", "sp": "rsp"}
I386_NAMES = {"ax": "eax", "bx": "ebx", "cx": "ecx", "dx": "edx", "si": "esi", "di": "edi",
              "bp": "ebp", "ip": "eip", "sp": "esp"}
# pt_regs member -> gdb's amd64 register name (the unwinder's saved registers)
GDB_NAMES = {"r15": "r15", "r14": "r14", "r13": "r13", "r12": "r12", "bp": "rbp", "bx": "rbx",
             "r11": "r11", "r10": "r10", "r9": "r9", "r8": "r8", "ax": "rax", "cx": "rcx",
             "dx": "rdx", "si": "rsi", "di": "rdi", "ip": "rip", "flags": "eflags",
             "sp": "rsp", "cs": "cs", "ss": "ss"}
USER_MODES = {"64": "64-bit", "32": "32-bit compat"}
# Shown on their own lines after the general registers.
_LAST = ("cs", "ss", "flags", "orig_ax")


def report(pt) -> Tuple[Dict[str, object], List[str]]:
    """(`kx regs`'s cs, ss and rflags keys, warnings) for a PtRegs."""
    warnings = []
    if pt.mode not in USER_MODES:
        warnings.append(f"CS {pt.cs:#x} is not a user code segment: this is not a user-mode frame")
    data = {"cs": {"selector": pt.cs, "name": descriptors.selector_name(pt.cs), "mode": pt.mode},
            "ss": {"selector": pt.ss, "name": descriptors.selector_name(pt.ss)},
            "rflags": decode_rflags(pt.flags)["set"]}
    return data, warnings


def _notes(d: dict) -> Dict[str, str]:
    """Notes on registers whose value the syscall entry explains."""
    r, notes = d["regs"], {}
    if not d["syscall"]:
        return notes
    if r["ax"] == (-ENOSYS & MASK64):
        notes["ax"] = "-ENOSYS: entry's placeholder until the handler returns"
    if d["mode"] == "64":
        if r["cx"] == r["ip"]:
            notes["cx"] = "= rip: SYSCALL saved the return address here"
        if r["r11"] == r["flags"]:
            notes["r11"] = "= rflags: SYSCALL saved RFLAGS here"
    return notes


def rows(d: dict) -> List[Tuple[str, str, Optional[str]]]:
    """The register lines of `kx regs`'s text view: (name, value, note)."""
    r = d["regs"]
    compat = d["mode"] == "32"
    names = I386_NAMES if compat else X86_64_NAMES
    notes = _notes(d)
    out = []
    for name in PT_REGS_FIELDS:
        if name in _LAST:
            continue
        narrow = compat and name in I386_NAMES
        value = r[name] & MASK32 if narrow else r[name]
        out.append((names.get(name, name), f"{value:#0{10 if narrow else 18}x}", notes.get(name)))
    out.append(("orig_ax", f"{r['orig_ax']:#x}" if r["orig_ax"] >= 0 else str(r["orig_ax"]), None))
    out.append(("flags", f"{r['flags']:#x}", " ".join(d["rflags"])))
    mode = USER_MODES.get(d["mode"], d["mode"])
    out.append(("cs", f"{r['cs']:#x}", f"{d['cs']['name'] or '?'}: {mode}"))
    out.append(("ss", f"{r['ss']:#x}", d["ss"]["name"]))
    return out
