"""How far into an x86-64 entry stub the CPU still holds the state it came
in with: the stack pointer it had in user mode (SYSCALL does not switch
stacks) or the hardware frame an interrupt gate pushed.

The kernel's entry stubs start with instructions that leave %rsp alone:
ENDBR64, SWAPGS, CLAC, CLD, NOPs (PTI's alternatives patch a `jmp` into
NOPs) and a store of %rsp elsewhere (`movq %rsp, %gs:cpu_tss_rw+TSS_sp2` in
entry_SYSCALL_64, `movl %esp, %r8d` in entry_SYSCALL_compat;
arch/x86/entry/entry_64.S and entry_64_compat.S, 6.1 and 6.12).  The first
instruction of any other kind may write %rsp (SWITCH_TO_KERNEL_CR3 uses it
as scratch, then the stub loads the task stack), so the window ends there:
up to and including that instruction's address (it has not run yet), %rsp
is still the one the CPU entered with.

Opcodes: SDM Vol.2A/2B (ENDBR64, SWAPGS, CLAC, CLD, NOP, MOV 89 /r);
prefixes and REX from SDM Vol.2A 2.1 and 2.2.1.
"""
from gdbext.decoders.x86insn import modrm_length, multibyte_nop_length

_FIXED = (
    bytes.fromhex("f30f1efa"),   # endbr64
    bytes.fromhex("0f01f8"),     # swapgs
    bytes.fromhex("0f01ca"),     # clac
    bytes.fromhex("0f01cb"),     # stac
    bytes.fromhex("fc"),         # cld
)
_PREFIXES = frozenset({0x66, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65})
_RSP = 4                         # register number of rsp/esp in ModRM.reg
_REX_R = 0x04


def _stores_rsp(code: bytes, i: int):
    """Length of `mov %rsp|%esp, r/m` (89 /r with reg = rsp, any segment
    prefix) at code[i], else None: it reads the stack pointer, never writes it."""
    j = i
    while j < len(code) and code[j] in _PREFIXES and j - i < 4:
        j += 1
    rex = 0
    if j < len(code) and 0x40 <= code[j] <= 0x4F:
        rex = code[j]
        j += 1
    if j + 1 >= len(code) or code[j] != 0x89:
        return None
    modrm = code[j + 1]
    if (modrm >> 3) & 7 != _RSP or rex & _REX_R:
        return None
    if modrm >> 6 == 3 and (modrm & 7) == _RSP and not rex & 0x01:
        return None                  # mov %rsp, %rsp: harmless, but no stub does it
    n = modrm_length(code, j + 1)
    return None if n is None else j + 1 + n - i


def _nop_length(code: bytes, i: int):
    """Length of a NOP at code[i]: 90 or 0f 1f /0 after operand-size and
    segment prefixes (the encodings alternatives patch in), else None."""
    j = i
    while j < len(code) and code[j] in _PREFIXES and j - i < 14:
        j += 1
    if code.startswith(b"\x90", j):
        return j + 1 - i
    if code.startswith(b"\x0f\x1f", j):
        n = multibyte_nop_length(code, j)
        return None if n is None else j + n - i
    return None


def _length(code: bytes, i: int):
    for insn in _FIXED:
        if code.startswith(insn, i):
            return len(insn)
    return _nop_length(code, i) or _stores_rsp(code, i)


def stack_untouched(code: bytes) -> int:
    """Offset of the first instruction of `code` (an entry stub's first
    bytes) that may write %rsp; %rsp is the entering one at every offset up
    to and including it."""
    i = 0
    while i < len(code):
        n = _length(code, i)
        if n is None:
            return i
        i += n
    return i
