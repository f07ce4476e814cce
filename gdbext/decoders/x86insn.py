"""Instruction-length facts shared by the code readers (the syscall switch
decoder in decoders/x86_switch.py, the trace loop's step-over in
arch/x86_64/stepover.py).  SDM Vol.2A 2.1.5: ModRM, SIB and displacement in
64-bit addressing."""
from typing import Optional


def modrm_length(code: bytes, i: int) -> Optional[int]:
    """Bytes taken by the ModRM at code[i] with its SIB and displacement,
    or None if `code` ends first."""
    if i >= len(code):
        return None
    modrm = code[i]
    mod, rm = modrm >> 6, modrm & 7
    n = 1
    if mod != 3 and rm == 4:           # a SIB byte follows
        if i + 1 >= len(code):
            return None
        n += 1
        if mod == 0 and (code[i + 1] & 7) == 5:
            n += 4                     # SIB base 101 with mod 00: disp32
    if mod == 0 and rm == 5:
        n += 4                         # RIP-relative disp32
    elif mod == 1:
        n += 1
    elif mod == 2:
        n += 4
    return n if i + n <= len(code) else None


def multibyte_nop_length(code: bytes, i: int) -> Optional[int]:
    """Length of the `0f 1f /0` NOP (nopl/nopw r/m, SDM Vol.2B NOP) whose
    0f is at code[i], without prefixes; None if `code` ends first or the
    bytes are not that NOP."""
    if code[i:i + 2] != b"\x0f\x1f" or i + 2 >= len(code) or (code[i + 2] >> 3) & 7:
        return None
    n = modrm_length(code, i + 2)
    return None if n is None else 2 + n
