"""KASLR on the i386 guest (`kaslr` on the command line): kx finds the slide
from the IDT, SYSENTER_EIP, the banner and the build ID, and relocates its
symbols and gdb's.  Ground truth: the int $0x80 gate read from QEMU's
monitor (`x` on the IDT) against System.map's entry_INT80_32."""
import re

import pytest

from tests.guest_i386.conftest import CONFIG, HELLO32_LEN, elf_symbols
from tests.guestlib import GuestSession


@pytest.fixture(scope="module")
def kaslr_kx():
    config = CONFIG.__class__(**{**CONFIG.__dict__, "kaslr": True})
    session = GuestSession.get(config)
    yield session
    GuestSession.release(config)


def _gate_0x80_from_monitor(kx) -> int:
    idt = kx.guest.cpu_registers(0)["idt"]["base"]
    words = [int(w, 16) for w in re.findall(r"0x([0-9a-f]{8})", kx.guest.hmp(f"x /2wx {idt + 0x80 * 8:#x}"))]
    low, high = words[-2:]
    return (low & 0xFFFF) | (high & 0xFFFF0000)


def test_kaslr_slide_and_relocated_symbols(kaslr_kx):
    kx = kaslr_kx
    kx.ensure_stopped()
    slide = _gate_0x80_from_monitor(kx) - kx.symbols["entry_INT80_32"]
    assert slide and slide % (2 << 20) == 0
    d = kx.json("kx kaslr")
    assert d["text_slide"] == slide and d["applied"] and d["match"]
    assert {"idt", "banner", "build_id"} <= set(d["agreeing"])
    sym = elf_symbols("hello32")
    # gdb's own symbols are relocated too: the breakpoint lands on the slid stub.
    kx.run_to("entry_INT80_32", condition=f"$eax == 4 && $edx == {HELLO32_LEN}", timeout=180)
    assert kx.gdb.eval("$pc") & 0xFFFFFFFF == kx.symbols["entry_INT80_32"] + slide
    ev = kx.json("kx event")
    assert (ev["nr"], ev["comm"], ev["entry"]) == (4, "hello32", "entry_INT80_32")
    assert ev["handler"]["address"] == kx.symbols["__ia32_sys_write"] + slide
    assert [a["value"] for a in ev["args"]] == [1, sym["msg"], HELLO32_LEN]
    assert kx.json("kx syscalls --check")["check"]["clean"]
    kx.ensure_stopped()
