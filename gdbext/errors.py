"""The errors kx reports to the user as one clear line (never a traceback)."""


class KxError(Exception):
    """A problem the user can act on; the message is the whole story."""


class NoTarget(KxError):
    def __init__(self, msg="no target: connect with `target remote HOST:PORT` first"):
        super().__init__(msg)


class TargetLost(KxError):
    def __init__(self, msg="target connection lost"):
        super().__init__(msg)


class BadArgument(KxError):
    pass


class MemoryUnreadable(KxError):
    def __init__(self, address: int, length: int = 0, why: str = ""):
        self.address = address
        self.length = length
        msg = f"cannot read memory at {address:#x}"
        if length:
            msg += f" ({length} bytes)"
        if why:
            msg += f": {why}"
        super().__init__(msg)


# name -> why gdb's symbols lack it ("" when nothing is known), set by the
# kernel model when the symbols come from the guest's own kallsyms
# (kernel/guest_session.py): every raise site then says it.
missing_symbol_reason = None


class MissingSymbol(KxError):
    def __init__(self, name: str, why: str = ""):
        self.name = name
        reason = "" if why or missing_symbol_reason is None else missing_symbol_reason(name)
        if reason:
            super().__init__(f"this kernel has no symbol `{name}`: {reason}")
        else:
            super().__init__(f"this kernel has no symbol `{name}`" + (f" ({why})" if why else ""))


class MissingType(KxError):
    def __init__(self, name: str, member: str = "", why: str = ""):
        self.name = name
        self.member = member
        if why:
            super().__init__(f"no type `{name}`: {why}")
        elif member:
            super().__init__(f"the debug info has no member `{member}` in `{name}`")
        else:
            super().__init__(f"the debug info has no type `{name}` (is the vmlinux built with DWARF?)")


class NotSupported(KxError):
    pass


class DecodeError(KxError, ValueError):
    """Raised by the pure decoders for truncated or malformed input."""


class KernelMismatch(KxError):
    """The loaded vmlinux is not the running kernel (kernel/kaslr.py)."""
