"""ModRM/SIB/displacement lengths against instructions assembled by hand
(SDM Vol.2A Table 2-2/2-3)."""
from hypothesis import given, strategies as st

from gdbext.decoders.x86insn import modrm_length


def test_known_nops():
    # 0f 1f /0 forms that compilers and the kernel's alternatives emit.
    cases = {
        bytes.fromhex("00"): 1,                    # nopl (%rax)
        bytes.fromhex("4000"): 2,                  # nopl 0x0(%rax)
        bytes.fromhex("440000"): 3,                # nopl 0x0(%rax,%rax,1)
        bytes.fromhex("8000000000"): 5,            # nopl 0x0(%rax) disp32
        bytes.fromhex("840000000000"): 6,          # nopw 0x0(%rax,%rax,1) disp32
        bytes.fromhex("0500000000"): 5,            # rip-relative
        bytes.fromhex("040500000000"): 6,          # SIB, no base: disp32
        bytes.fromhex("c0"): 1,                    # register operand
    }
    for code, n in cases.items():
        assert modrm_length(code, 0) == n, code.hex()


def test_truncated_is_none():
    assert modrm_length(b"", 0) is None
    assert modrm_length(bytes.fromhex("80"), 0) is None
    assert modrm_length(bytes.fromhex("04"), 0) is None


@given(st.binary(max_size=8), st.integers(0, 10))
def test_never_overruns(code, i):
    n = modrm_length(code, i)
    assert n is None or (1 <= n <= 6 and i + n <= len(code))
