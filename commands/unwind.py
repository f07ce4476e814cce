"""`bt` across the kernel entry: an unwinder for entry-stub frames and a
frame filter that marks the user-mode frame.

gdb unwinds the C part of a syscall with DWARF CFI up to the entry stub
(entry_SYSCALL_64 and friends), and then has nothing to go on: it prints
a 0x0 frame.  At the stub's frame, right after its call into C, %rsp is the
address of struct pt_regs (see gdbext/kernel/entry.py), so the caller's
registers are exactly pt_regs: for a syscall, the user-mode context, as
crash's `bt` shows at exception frames.  Any frame we cannot prove to be
such a stub is left to gdb's own unwinders.
"""
import gdb
from gdb.FrameDecorator import FrameDecorator
from gdb.unwinder import Unwinder, register_unwinder

from gdbext import errors
from gdbext.decoders import ptregs as ptdec
from gdbext.decoders.descriptors import KERNEL_CS, USER32_CS, USER_CS
from gdbext.kernel import entry, symbols
from gdbext import machine

# pt_regs field -> gdb's amd64 register name
_REG_NAMES = {"r15": "r15", "r14": "r14", "r13": "r13", "r12": "r12", "bp": "rbp", "bx": "rbx",
              "r11": "r11", "r10": "r10", "r9": "r9", "r8": "r8", "ax": "rax", "cx": "rcx",
              "dx": "rdx", "si": "rsi", "di": "rdi", "ip": "rip", "flags": "eflags",
              "sp": "rsp", "cs": "cs", "ss": "ss"}
USER_SPACE_END = 0x0000800000000000


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


def _entry_frame(pending_frame):
    """(entry name, pt_regs address, PtRegs) if this frame is an entry stub
    just after its call into C, else None."""
    if pending_frame.level() == 0:
        return None  # still inside the stub: pt_regs may be half built
    pc = int(pending_frame.read_register("rip")) & machine.MASK64
    name = entry.entry_of(pc)
    if name is None:
        return None
    # The return address must follow a `call rel32` (e8): we are at the
    # point where the stub called into C with %rsp = pt_regs.
    if machine.read_in_unwinder(pc - 5, 1) != b"\xe8":
        return None
    sp = int(pending_frame.read_register("rsp")) & machine.MASK64
    regs = ptdec.decode_pt_regs(machine.read_in_unwinder(sp, ptdec.PT_REGS_SIZE))
    if regs.cs not in (KERNEL_CS, USER_CS, USER32_CS):
        return None
    return name, sp, regs


class EntryUnwinder(Unwinder):
    def __init__(self):
        super().__init__("kx-entry-frames")
        self._types = {}

    def _value(self, pending_frame, reg, value):
        t = self._types.get(reg)
        if t is None:
            t = self._types[reg] = pending_frame.read_register(reg).type
        return gdb.Value((value & ((1 << (8 * t.sizeof)) - 1)).to_bytes(t.sizeof, "little"), t)

    def __call__(self, pending_frame):
        try:
            hit = _entry_frame(pending_frame)
            if hit is None:
                return None
            name, sp, regs = hit
            start = symbols.lookup(name) or int(pending_frame.read_register("rip"))
            info = pending_frame.create_unwind_info(_FrameId(gdb.Value(sp), gdb.Value(start)))
            for field, reg in _REG_NAMES.items():
                info.add_saved_register(reg, self._value(pending_frame, reg, getattr(regs, field)))
            return info
        except (gdb.error, errors.KxError, ValueError, OverflowError):
            return None  # never break gdb's unwinding


class _UserFrame(FrameDecorator):
    def __init__(self, base, label):
        super().__init__(base)
        self._label = label

    def function(self):
        return self._label


class UserFrameFilter:
    """Names the frame below an entry stub: user mode, taken from pt_regs."""

    def __init__(self):
        self.name = "kx-user-frames"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        for decorated in frames:
            yield self._mark(decorated)

    @staticmethod
    def _mark(decorated):
        try:
            frame = decorated.inferior_frame()
            newer = frame.newer()
            if newer is None or frame.pc() >= USER_SPACE_END:
                return decorated
            name = entry.entry_of(newer.pc())
            if name is None:
                return decorated
            # Only below a stub frame that called into C (what the unwinder
            # claims): stopped inside the stub itself (level 0, say at its
            # first instruction), pt_regs is not built and the frame gdb
            # found below is a guess, not the user-mode context.
            if newer.level() == 0 or machine.read_in_unwinder(newer.pc() - 5, 1) != b"\xe8":
                return decorated
            sp = int(newer.read_register("rsp")) & machine.MASK64
            mode = ptdec.mode_from_cs(int(frame.read_register("cs")))
            bits = {"64": "64-bit", "32": "32-bit compat"}.get(mode, mode)
            return _UserFrame(decorated, f"[user mode, {bits}: pt_regs at {sp:#x}]")
        except (gdb.error, errors.KxError, ValueError):
            return decorated


def register():
    register_unwinder(None, EntryUnwinder(), replace=True)
    UserFrameFilter()
