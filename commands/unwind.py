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

Stopped at a stub's first instructions (level 0, before pt_regs exist) the
architecture says where the user context still is (on x86-64 at
entry_SYSCALL_64: RIP in rcx, RSP still the user's; Arch.entry_user_frame),
and the unwinder builds the user frame from that.  A user frame kx built is
the outermost frame: the kernel cannot vouch for anything past it, so the
unwinder claims it as its own caller (gdb stops there) and the filter ends
the backtrace there.
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


def _thread():
    """The thread gdb is unwinding (its global number)."""
    thread = gdb.selected_thread()
    return None if thread is None else thread.global_num


def _unsigned(value) -> int:
    """A register as an unsigned number at its own width (gdb types i386's
    general registers, ebp included, as int32_t)."""
    return int(value) & ((1 << (8 * value.type.sizeof)) - 1)


def _entry_frame(pending_frame):
    """(entry name, pt_regs address, PtRegs) if this frame is an entry stub
    just after its call into C, else None."""
    if pending_frame.level() == 0:
        return None  # still inside the stub: pt_regs may be half built
    a = arch.current()
    pc = a.code_address(_unsigned(pending_frame.read_register(a.pc)))
    name = entry.entry_of(pc)
    if name is None:
        return None
    # The return address must follow a call: we are at the point where the
    # stub called into C with the stack pointer at pt_regs.
    if not a.follows_call(pc, machine.read_in_unwinder):
        return None
    sp = _unsigned(pending_frame.read_register(a.sp))
    regs = a.decode_pt_regs(machine.read_in_unwinder(sp, a.pt_regs_size))
    if not a.pt_regs_plausible(regs):
        return None
    return name, sp, regs


def live_user_frame(pc, read_register):
    """(stub start, arch.UserFrame) when `pc` is inside a syscall entry
    stub before pt_regs exist and the CPU still holds the user context;
    `read_register(name) -> int` reads the stopped frame's registers."""
    a = arch.current()
    stub = entry.syscall_stub(entry.entry_of(pc))
    start = symbols.lookup(stub.name) if stub else None
    if start is None or not 0 <= pc - start < a.entry_code_size:
        return None
    code = machine.read_in_unwinder(start, a.entry_code_size)
    regs = {}
    # The system registers too: arm64 keeps the user pc, PSTATE and sp in
    # ELR_EL1, SPSR_EL1 and SP_EL0 until kernel_entry saves them.
    for name in a.general_regs + a.system_regs:
        try:
            regs[name] = read_register(name) & machine.MASK64
        except (gdb.error, ValueError):
            pass
    user = a.entry_user_frame(stub, pc - start, code, regs, machine.read_in_unwinder)
    return None if user is None else (start, user)


class EntryUnwinder(Unwinder):
    def __init__(self):
        super().__init__("kx-entry-frames")
        self._types = {}
        # Keyed by (thread, pc, sp): gdb also sniffs other threads' frame 0
        # (at a stop, for their states), which must not drop this thread's.
        self._user_frames = {}   # user frames this unwinder built -> True
        self._callers = {}       # such a user frame -> (its caller (Arch.user_frame_caller), its id sp)

    def _value(self, pending_frame, reg, value):
        t = self._types.get(reg)
        if t is None:
            t = self._types[reg] = pending_frame.read_register(reg).type
        return gdb.Value((value & ((1 << (8 * t.sizeof)) - 1)).to_bytes(t.sizeof, "little"), t)

    def __call__(self, pending_frame):
        try:
            a = arch.current()
            pc = _unsigned(pending_frame.read_register(a.pc))
            sp = _unsigned(pending_frame.read_register(a.sp))
            key = (_thread(), pc, sp)
            if pending_frame.level() == 0:
                # A new unwind of this thread: frames built for an older stop are gone.
                for built in (self._user_frames, self._callers):
                    for old in [k for k in built if k[0] == key[0]]:
                        del built[old]
            elif key in self._callers:
                # Its id keeps the kernel stack address of the stub frame:
                # gdb takes a user stack address, below the kernel's, for a
                # corrupt stack and would not unwind further.
                caller, id_sp = self._callers[key]
                return self._frame(pending_frame, id_sp, pc, caller, outermost=True)
            elif key in self._user_frames:
                return self._outermost(pending_frame, pc, sp)
            hit = _entry_frame(pending_frame)
            if hit is not None:
                name, sp, regs = hit
                saved = {reg: getattr(regs, field) for field, reg in a.pt_regs_gdb_names.items()}
                saved = a.user_regs_from_pt_regs(name, saved, machine.read_in_unwinder)
                return self._frame(pending_frame, sp, symbols.lookup(name) or pc, saved)
            if pending_frame.level() == 0:
                live = live_user_frame(pc, lambda r: _unsigned(pending_frame.read_register(r)))
                if live is not None:
                    start, user = live
                    return self._frame(pending_frame, sp, start, user.regs)
            return None
        except (gdb.error, errors.KxError, ValueError, OverflowError):
            return None  # never break gdb's unwinding

    def _frame(self, pending_frame, sp, pc, saved, outermost=False):
        """Unwind info for the frame (sp, pc) whose caller has the registers
        `saved`: the user-mode frame (or, `outermost`, the caller the
        architecture found above a user frame)."""
        a = arch.current()
        info = pending_frame.create_unwind_info(_FrameId(gdb.Value(sp), gdb.Value(pc)))
        for reg, value in saved.items():
            info.add_saved_register(reg, self._value(pending_frame, reg, value))
        mask = (1 << 8 * a.pointer_size) - 1
        key = (_thread(), saved[a.pc] & mask, saved[a.sp] & mask)
        caller = None if outermost else _user_caller(saved)
        if caller is None:
            self._user_frames[key] = True
        else:
            self._callers[key] = (caller.regs, sp)
        return info

    def _outermost(self, pending_frame, pc, sp):
        """The user frame: nothing older can be trusted.  Its caller is
        given as itself, which gdb refuses ("previous frame identical"):
        the backtrace ends here, not in frames guessed from user memory."""
        a = arch.current()
        info = pending_frame.create_unwind_info(_FrameId(gdb.Value(sp), gdb.Value(pc)))
        for reg in (a.pc, a.sp):
            info.add_saved_register(reg, pending_frame.read_register(reg))
        return info


def _user_caller(regs):
    """Arch.user_frame_caller of a user frame, None when it has none or
    its memory cannot be read."""
    try:
        return arch.current().user_frame_caller(regs, machine.read_in_unwinder)
    except (errors.KxError, KeyError):
        return None


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
        caller = None
        for decorated in frames:
            if caller is not None:
                # The caller the architecture found above the user frame.
                a = arch.current()
                same = decorated.inferior_frame().pc() == caller.regs[a.pc]
                label = f"[user mode, {a.user_modes.get(caller.mode, caller.mode)}: {caller.source}]"
                yield _UserFrame(decorated, label) if same else decorated
                return
            marked = self._mark(decorated)
            yield marked
            if marked is not decorated:
                caller = _frame_caller(decorated.inferior_frame())
                if caller is None:
                    return  # the user frame is the outermost the kernel knows

    @staticmethod
    def _mark(decorated):
        try:
            a = arch.current()
            frame = decorated.inferior_frame()
            newer = frame.newer()
            if newer is None or frame.pc() >= a.user_space_end:
                return decorated
            name = entry.entry_of(a.code_address(newer.pc()))
            if name is None:
                return decorated
            label = _user_label(frame, newer)
            return decorated if label is None else _UserFrame(decorated, label)
        except (gdb.error, errors.KxError, ValueError):
            return decorated


def _frame_caller(frame):
    """Arch.user_frame_caller of the user frame gdb built as `frame`."""
    a = arch.current()
    regs = {}
    for name in a.general_regs:
        try:
            regs[name] = _unsigned(frame.read_register(name))
        except (gdb.error, ValueError):
            pass
    return _user_caller(regs)


def _user_label(frame, newer):
    """The label of `frame`, the frame below the entry stub frame `newer`,
    if the unwinder built it as the user-mode frame."""
    a = arch.current()
    if newer.level() == 0:
        # Stopped inside the stub itself: a user frame only where the CPU
        # still holds the user context (else gdb's frame is a guess).
        live = live_user_frame(newer.pc() & machine.MASK64, lambda r: _unsigned(newer.read_register(r)))
        if live is None or live[1].regs[a.pc] != frame.pc():
            return None
        bits = a.user_modes.get(live[1].mode, live[1].mode)
        return f"[user mode, {bits}: {live[1].source}, pt_regs not built yet]"
    # Only below a stub frame that called into C (what the unwinder claims).
    if not a.follows_call(a.code_address(newer.pc()), machine.read_in_unwinder):
        return None
    sp = _unsigned(newer.read_register(a.sp))
    mode = a.user_mode(a.decode_pt_regs(machine.read_in_unwinder(sp, a.pt_regs_size)))
    return f"[user mode, {a.user_modes.get(mode, mode)}: pt_regs at {sp:#x}]"


def register():
    register_unwinder(None, EntryUnwinder(), replace=True)
    UserFrameFilter()
