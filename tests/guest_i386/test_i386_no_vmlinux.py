# SPDX-License-Identifier: GPL-2.0-or-later
"""gdb attached to the i386 guest with no vmlinux, KASLR on: Debian's
686-pae 6.1 is built without CONFIG_DEBUG_INFO_BTF and without
CONFIG_KALLSYMS_ALL, so kx has the kernel's text symbols from kallsyms
(32-bit: u32 offsets from a 4-byte kallsyms_relative_base) and no types.

Ground truth kx never sees: System.map, the vmlinux file's build ID, and
the KASLR slide the test assembles from QEMU's monitor (IDTR, then the
int $0x80 gate's bytes) minus System.map's entry_INT80_32."""
import os
import re
import shutil
import tempfile

import pytest
from elftools.elf.elffile import ELFFile

from kxlab import kernels, paths
from kxlab.gdbrun import GdbError
from tests import vmlinux_file
from tests.guest.test_no_vmlinux import _file_build_id
from tests.guest_i386.conftest import CONFIG, HELLO32_LEN
from tests.guestlib import GuestSession

CONFIG_NO_VMLINUX = CONFIG.__class__(**{**CONFIG.__dict__, "kaslr": True, "no_vmlinux": True})
STRUCT_COMMANDS = ("kx task", "kx ps", "kx event", "kx regs")


@pytest.fixture(scope="module")
def bare():
    # Cold: no kallsyms or symbol file cached from an earlier run.
    vmlinux = kernels.fetch(CONFIG.kernel, quiet=True, arch=CONFIG.arch).vmlinux
    shutil.rmtree(paths.cache_dir() / "guest-kernels" / _file_build_id(vmlinux), ignore_errors=True)
    session = GuestSession.get(CONFIG_NO_VMLINUX)
    yield session
    GuestSession.release(CONFIG_NO_VMLINUX)


@pytest.fixture
def nv(bare):
    bare.ensure_stopped()
    yield bare
    bare.cleanup_after_test()


def _slide(nv) -> int:
    idt = nv.guest.cpu_registers(0)["idt"]["base"]
    words = [int(w, 16) for w in re.findall(r"0x([0-9a-f]{8})", nv.guest.hmp(f"x /2wx {idt + 0x80 * 8:#x}"))]
    low, high = words[-2:]
    return ((low & 0xFFFF) | (high & 0xFFFF0000)) - nv.symbols["entry_INT80_32"]


def test_kernel_names_the_build_and_says_btf_is_absent(nv):
    slide = _slide(nv)
    d = nv.json("kx kernel")
    assert d["source"] == "guest" and d["btf"] is False
    assert d["build_id"] == _file_build_id(nv.kernel.vmlinux)
    assert d["text"] == nv.symbols["_text"] + slide
    assert d["facts"]["btf"].startswith("none: this kernel was built without CONFIG_DEBUG_INFO_BTF")
    # No __start_notes in a text-only kallsyms: the note is found by its
    # header, past the vDSO image's own build-id note.
    found = re.match(r"GNU build-id note found by its header at (0x[0-9a-f]+)", d["facts"]["build_id"])
    assert found, d["facts"]
    assert nv.symbols["__start_notes"] <= int(found.group(1), 16) - slide < nv.symbols["__stop_notes"]
    assert d["facts"]["kallsyms"].startswith("scan of "), d["facts"]
    assert d["facts"]["vmcoreinfo"].startswith("not located: no vmcoreinfo_data in kallsyms"), d["facts"]
    assert "no BTF" in nv.cmd("kx kernel")
    assert os.path.basename(d["symbol_file"]).endswith(".elf")
    with open(d["symbol_file"], "rb") as f:
        assert ELFFile(f).elfclass == 32 and ELFFile(f)["e_machine"] == "EM_386"


def test_every_kallsyms_address_is_system_maps(nv):
    """The scan from the IDT handler, run again in gdb (not the cache)."""
    slide = _slide(nv)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "syms.txt")
        nv.cmd("python from gdbext import arch; from gdbext.kernel import guest_kernel as g; "
               "p = arch.current().kernel_text_pointers(0); s = g.scan_kallsyms(min(p.values()), 0)[0]; "
               f"open({path!r}, 'w').write(''.join(f'{{x.address}} {{x.name}}\\n' for x in s))")
        with open(path) as f:
            syms = [(int(a), n) for a, n in (line.split() for line in f)]
    smap = {(a, n) for a, _l, n in vmlinux_file.system_map(nv.kernel.system_map)}
    for address, name in syms:
        assert (address - slide, name) in smap, (hex(address), name)
    print(f"i386 no vmlinux: {len(syms)} kallsyms symbols, all at System.map's address + slide {slide:#x}")
    assert len(syms) > 40000


def test_kaslr_slide_from_the_idt(nv):
    slide = _slide(nv)
    assert slide and slide % (2 << 20) == 0
    d = nv.json("kx kaslr")
    assert d["text_slide"] == slide and d["applied"] and "idt" in d["agreeing"]


@pytest.mark.parametrize("command", STRUCT_COMMANDS)
def test_struct_commands_say_no_btf_in_one_line(nv, command):
    with pytest.raises(GdbError) as failed:
        nv.cmd(command)
    out = str(failed.value).strip()
    assert len(out.splitlines()) == 1 and out.startswith(f"{command}: "), out
    for what in ("no BTF (built without CONFIG_DEBUG_INFO_BTF)", "msr, gdt, idt, tss, syscalls, break and kaslr work"):
        assert what in out, out
    d = nv.json(command)
    assert set(d) == {"error"} and out == f"{command}: {d['error']}"


def test_idt_gate_0x80_is_entry_int80_32(nv):
    slide = _slide(nv)
    (gate,) = nv.json("kx idt 0x80 --cpu 0")["gates"]
    assert gate["handler"] == nv.symbols["entry_INT80_32"] + slide and gate["symbol"] == "entry_INT80_32"
    assert gate["ok"]


def test_break_on_a_kallsyms_symbol_then_msr_and_syscalls(nv):
    slide = _slide(nv)
    nv.run_to("entry_INT80_32", condition=f"$eax == 4 && $edx == {HELLO32_LEN}", timeout=180)
    assert nv.gdb.eval("$pc") & 0xFFFFFFFF == nv.symbols["entry_INT80_32"] + slide
    d = nv.json(f"kx msr --cpu {nv.gdb.eval('$_thread') - 1}")
    by = {m["name"]: m for m in d["msrs"]}
    assert by["IA32_SYSENTER_EIP"]["source"] == "rdmsr"
    assert by["IA32_SYSENTER_EIP"]["value"] == nv.symbols["entry_SYSENTER_32"] + slide
    s = nv.json("kx syscalls")
    assert s["switch"] == nv.symbols["ia32_sys_call"] + slide and s["nr_syscalls"] == 451
    by_nr = {e["nr"]: e for e in s["entries"]}
    for nr, name in ((4, "write"), (20, "getpid"), (295, "openat")):
        assert by_nr[nr]["name"] == name and by_nr[nr]["handler"] == nv.symbols[f"__ia32_sys_{name}"] + slide
