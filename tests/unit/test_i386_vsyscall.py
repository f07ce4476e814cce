"""The user frames around __kernel_vsyscall (gdbext/arch/i386/vsyscall.py),
on a fake user memory laid out as vdso32/system_call.S and sysenter32.S
leave it: the vDSO code, the caller's `call *%edi` and the three pushes."""
import pytest

from gdbext import errors
from gdbext.arch.i386 import vsyscall

VSYSCALL = 0xB7F32540          # __kernel_vsyscall
# push ecx; push edx; push ebp; mov %esp,%ebp; sysenter; int $0x80; pop ebp; pop edx; pop ecx; ret
VDSO_CODE = bytes.fromhex("515255" "89e5" "0f34" "cd80" "5d5a59c3")
LANDING = VSYSCALL + VDSO_CODE.index(bytes.fromhex("5d5a59c3"))
CALLER = 0x08049037             # call *%edi
USER_SP = 0xBF88C490


def _memory(call=bytes.fromhex("ffd7")):
    mem = {}

    def put(address, data):
        for i, b in enumerate(data):
            mem[address + i] = b
    put(VSYSCALL, VDSO_CODE + bytes(64))
    put(CALLER - 5, bytes(5) + call + bytes(8))
    words = (0x11111111, 0x22222222, 0x33333333, CALLER + len(call))   # ebp, edx, ecx, return
    put(USER_SP, b"".join(w.to_bytes(4, "little") for w in words))

    def read(address, size):
        try:
            return bytes(mem[address + i] for i in range(size))
        except KeyError:
            raise errors.MemoryUnreadable(address, size) from None
    return read


def test_caller_of_the_landing_pad_from_the_pushes():
    caller = vsyscall.caller_frame({"eip": LANDING, "esp": USER_SP, "eax": 4}, _memory())
    assert caller.regs["eip"] == CALLER + 2 and caller.regs["esp"] == USER_SP + 16
    assert (caller.regs["ebp"], caller.regs["edx"], caller.regs["ecx"]) == (0x11111111, 0x22222222, 0x33333333)
    assert caller.regs["eax"] == 4 and caller.mode == "32"


def test_no_caller_away_from_the_landing_pad():
    assert vsyscall.caller_frame({"eip": VSYSCALL, "esp": USER_SP}, _memory()) is None


def test_landing_pad_by_the_callers_call_edi():
    regs = {"ebp": USER_SP, "edi": VSYSCALL}
    assert vsyscall._landing_pad_by_caller(regs, _memory()) == LANDING


def test_landing_pad_by_an_unknown_call_is_refused():
    regs = {"ebp": USER_SP, "edi": VSYSCALL}
    with pytest.raises(errors.KxError):
        vsyscall._landing_pad_by_caller(regs, _memory(call=bytes.fromhex("e8")))
