# SPDX-License-Identifier: GPL-2.0-or-later
"""gdb attached with no vmlinux: kx reads the kernel's own kallsyms and BTF
from guest memory (kernel/guest_kernel.py) and gives gdb a symbol file built
from them (kernel/guest_elf.py), with and without KASLR.

Ground truth kx never sees: System.map and the vmlinux's DWARF (read by a
separate gdb on the file), the KASLR slide assembled by the test from the
IDT gate bytes (QEMU's IDTR) minus System.map, the build ID of the vmlinux
file, what the workload printed, and kx ps after loading the real vmlinux
into the same gdb at the same stop.
"""
import json
import os
import tempfile

import pytest
from elftools.elf.elffile import ELFFile

from tests import vmlinux_file
from tests.conftest import KERNELS
from tests.guestlib import GuestSession, LabConfig
from tests.unit.test_decoders_btf import _pairs

from .test_event import check_openat
from .test_kaslr import START_KERNEL_MAP, Slid, true_slide

CONFIGS = [(k, kaslr) for k in KERNELS for kaslr in (False, True)]


@pytest.fixture(scope="module", params=CONFIGS, ids=[f"{k}-{'kaslr' if a else 'nokaslr'}" for k, a in CONFIGS])
def bare(request):
    kernel, kaslr = request.param
    config = LabConfig(kernel=kernel, smp=2, cpu="Haswell", pti="on", kaslr=kaslr, no_vmlinux=True)
    session = GuestSession.get(config)
    yield session
    GuestSession.release(config)


@pytest.fixture
def nv(bare):
    bare.ensure_stopped()
    yield bare
    bare.cleanup_after_test()


def _file_build_id(vmlinux) -> str:
    with open(vmlinux, "rb") as f:
        for note in ELFFile(f).get_section_by_name(".notes").iter_notes():
            if note["n_name"] == "GNU" and note["n_type"] == "NT_GNU_BUILD_ID":
                return note["n_desc"]
    raise AssertionError("the vmlinux has no build ID")


def test_attach_loads_the_guests_own_kernel(nv):
    # The attach stop says so; the first kx command loads it.
    assert "kx: no vmlinux: the first kx command loads" in nv.gdb.attach_output
    assert "symbol file" in nv.cmd("kx kernel")
    entry = nv.symbols["entry_SYSCALL_64"] + true_slide(nv)
    assert nv.cmd(f"info symbol {entry:#x}").startswith("entry_SYSCALL_64 in section .kx.text")
    d = nv.json("kx kernel")
    assert d["source"] == "guest" and d["btf"] is True
    assert d["build_id"] == _file_build_id(nv.kernel.vmlinux)
    assert d["text"] == nv.symbols["_text"] + true_slide(nv)
    assert set(d["facts"]) >= {"kernel_text", "kallsyms", "build_id", "btf"}
    if nv.config.kernel != "5.10":   # VMCOREINFO lists the kallsyms arrays since 6.0
        # Found without symbols (a cache built before that: checked after the scan).
        assert (d["facts"]["vmcoreinfo"].startswith("found with no symbol")
                or d["facts"]["vmcoreinfo"] == "SYMBOL(kallsyms_*) agree with the scan"), d["facts"]


def _guest_python(nv, code: str):
    """What `code` (a gdb python snippet setting `out`) dumped as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        nv.cmd(f"python {code}; import json; json.dump(out, open({path!r}, 'w'))")
        with open(path) as f:
            return json.load(f)


def _check_against_system_map(nv, syms, slide) -> int:
    smap = {(a, n) for a, _l, n in vmlinux_file.system_map(nv.kernel.system_map)}
    checked = 0
    for address, name in syms:
        if name.startswith(".L"):       # 5.10 keeps compiler labels System.map drops
            continue
        link = address - slide if address >= START_KERNEL_MAP else address
        assert (link, name) in smap, (hex(address), name)
        checked += 1
    return checked


def test_vmcoreinfo_found_without_symbols(nv):
    """VMCOREINFO through the kernel's writable data (page tables), with no
    symbol: its pointer is System.map's vmcoreinfo_data, and on 6.0+ the
    kallsyms arrays it names decode to System.map's symbols."""
    slide = true_slide(nv)
    got = _guest_python(nv, "from gdbext.kernel import guest_vmcoreinfo as v; f = v.find(0); "
                            "w = v.array_addresses(f[2]); "
                            "out = [f[0], f[2], w, [(s.address, s.name) for s in v.read_kallsyms(w, 0)[0]] if w else []]")
    pointer, info, where, syms = got
    assert pointer == nv.symbols["vmcoreinfo_data"] + slide
    assert info["OSRELEASE"] == nv.kernel.abi
    if nv.config.kernel == "5.10":
        assert where == {}
        return
    for array, address in where.items():
        assert address == nv.symbols[f"kallsyms_{array}"] + slide, array
    checked = _check_against_system_map(nv, syms, slide)
    print(f"{nv.config}: VMCOREINFO at {pointer:#x}; {checked} of {len(syms)} symbols at System.map's address")
    assert checked > 40000


def test_every_kallsyms_address_matches_system_map(nv):
    slide = true_slide(nv)
    syms = _guest_python(nv, "from gdbext.kernel import guest_session as g; "
                             "out = [(a, n) for a, _l, n in g.current().symbols]")
    checked = _check_against_system_map(nv, syms, slide)
    print(f"{nv.config}: {checked} of {len(syms)} kallsyms symbols at System.map's address + {slide:#x}")
    assert checked > 40000


def test_struct_offsets_match_dwarf(nv):
    pairs = _pairs()
    want = vmlinux_file.dwarf_offsets(nv.kernel.vmlinux, pairs)
    compared = 0
    for (struct, path), offset in want.items():
        if offset is None:
            continue
        assert nv.gdb.eval(f"(unsigned long)&(({struct} *)0)->{path}") == offset, (struct, path)
        compared += 1
    assert compared >= 50
    text = nv.cmd("ptype struct pt_regs")
    assert "unsigned long orig_ax;" in text


def test_current_comm_in_plain_gdb(nv):
    nv.run_to("do_syscall_64")
    t = nv.json("kx task")
    out = nv.cmd("p $kx_current()->comm")
    assert f'"{t["comm"]}' in out
    assert nv.gdb.eval("$kx_current()->pid") == t["pid"]


def test_event_at_openat(nv):
    assert nv.json("kx kernel")["source"] == "guest"   # the first kx command loads the symbols
    slide = true_slide(nv)
    nv.run_to("entry_SYSCALL_64", condition="$rax == 257")
    assert nv.reg("pc") == nv.symbols["entry_SYSCALL_64"] + slide
    d = nv.json("kx event")
    check_openat(Slid(nv, slide), d)
    assert d["handler"]["symbol"] == "__x64_sys_openat"
    assert [a["name"] for a in d["args"]] == ["dfd", "filename", "flags", "mode"]
    # kx's unwinder with no file: the user frame from the live registers
    # (RIP in rcx at the first instruction), as with the vmlinux.
    frames = [line for line in nv.cmd("bt").splitlines() if line.startswith("#")]
    assert len(frames) == 2 and "entry_SYSCALL_64" in frames[0], frames
    assert "[user mode, 64-bit: live registers" in frames[1]
    assert int(frames[1].split()[1], 16) == nv.reg("rcx") == d["return_ip"]


def test_syscalls_check_has_no_file(nv):
    d = nv.json("kx syscalls --check")
    assert d["check"]["reference"] == "kallsyms" and d["check"]["clean"] is True
    assert "no vmlinux file" in nv.cmd("kx syscalls --check")


def test_ps_matches_the_dwarf_run(nv):
    """The same stop seen through the guest's own symbols, then through
    the vmlinux (loaded into the same gdb), then through the guest's again."""
    def rows():
        return sorted((t["pid"], t["comm"], t["state"], t["address"]) for t in nv.json("kx ps")["tasks"])
    bare_rows = rows()
    nv.cmd(f"symbol-file {nv.kernel.vmlinux}")
    try:
        assert nv.json("kx kernel")["source"] == "vmlinux"
        assert rows() == bare_rows
    finally:
        nv.cmd("kx kernel --load")
    assert nv.json("kx kernel")["source"] == "guest"
    assert len(bare_rows) > 10
