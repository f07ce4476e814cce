"""`bt` across the kernel entry: an unwinder for entry-stub frames and a
frame filter that marks the user-mode frame.

gdb unwinds the C part of a syscall with DWARF CFI up to the entry stub
(entry_SYSCALL_64 and friends), and then has nothing to go on: it prints
a 0x0 frame.  At the stub's frame, right after its call into C, the stack
pointer is the address of struct pt_regs (see gdbext/kernel/entry.py), so
the caller's registers are exactly pt_regs: for a syscall, the user-mode
context, as crash's `bt` shows at exception frames.  Any frame we cannot
prove to be such a stub is left to gdb's own unwinders.  Register names,
the call instruction and the pt_regs layout are the architecture's.
"""
import gdb
from gdb.FrameDecorator import FrameDecorator
from gdb.unwinder import Unwinder, register_unwinder

from gdbext import arch, errors
from gdbext.kernel import entry, symbols
from gdbext import machine


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


def _entry_frame(pending_frame):
    """(entry name, pt_regs address, PtRegs) if this frame is an entry stub
    just after its call into C, else None."""
    if pending_frame.level() == 0:
        return None  # still inside the stub: pt_regs may be half built
    a = arch.current()
    pc = int(pending_frame.read_register(a.pc)) & machine.MASK64
    name = entry.entry_of(pc)
    if name is None:
        return None
    # The return address must follow a call: we are at the point where the
    # stub called into C with the stack pointer at pt_regs.
    if not a.follows_call(pc, machine.read_in_unwinder):
        return None
    sp = int(pending_frame.read_register(a.sp)) & machine.MASK64
    regs = a.decode_pt_regs(machine.read_in_unwinder(sp, a.pt_regs_size))
    if not a.pt_regs_plausible(regs):
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
            a = arch.current()
            start = symbols.lookup(name) or int(pending_frame.read_register(a.pc))
            info = pending_frame.create_unwind_info(_FrameId(gdb.Value(sp), gdb.Value(start)))
            for field, reg in a.pt_regs_gdb_names.items():
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
            a = arch.current()
            frame = decorated.inferior_frame()
            newer = frame.newer()
            if newer is None or frame.pc() >= a.user_space_end:
                return decorated
            name = entry.entry_of(newer.pc())
            if name is None:
                return decorated
            # Only below a stub frame that called into C (what the unwinder
            # claims): stopped inside the stub itself (level 0, say at its
            # first instruction), pt_regs is not built and the frame gdb
            # found below is a guess, not the user-mode context.
            if newer.level() == 0 or not a.follows_call(newer.pc(), machine.read_in_unwinder):
                return decorated
            sp = int(newer.read_register(a.sp)) & machine.MASK64
            mode = a.user_mode(a.decode_pt_regs(machine.read_in_unwinder(sp, a.pt_regs_size)))
            bits = a.user_modes.get(mode, mode)
            return _UserFrame(decorated, f"[user mode, {bits}: pt_regs at {sp:#x}]")
        except (gdb.error, errors.KxError, ValueError):
            return decorated


def register():
    register_unwinder(None, EntryUnwinder(), replace=True)
    UserFrameFilter()
