# SPDX-License-Identifier: GPL-2.0-or-later
"""The symbol file kx builds with no vmlinux (kernel/guest_elf.py), from a
cached kernel's own kallsyms and BTF cut out of its vmlinux file: every
kallsyms symbol must be in it at its address (pyelftools reads it back),
the copied bytes where they were, and gdb must read the types and typed
variables from it (gdb on the vmlinux file is the reference)."""
import collections

import pytest
from elftools.elf.elffile import ELFFile

from gdbext.decoders import kallsyms as K
from gdbext.kernel import guest_elf
from tests import vmlinux_file
from tests.unit.syscall_fixtures import cached_kernels
from tests.unit.test_decoders_kallsyms import _ARRAYS

KERNELS = cached_kernels()


@pytest.fixture(scope="module", params=KERNELS, ids=[k[0] for k in KERNELS])
def built(request, tmp_path_factory):
    _series, d = request.param
    vmlinux = f"{d}/vmlinux"
    where = vmlinux_file.symbol_values(vmlinux, _ARRAYS + ("__start_notes", "__stop_notes", "linux_banner"))
    lo = min(where[n] for n in _ARRAYS if n in where) - (1 << 20)
    blob = vmlinux_file.read(vmlinux, lo, where["kallsyms_token_index"] + (4 << 20) - lo)
    t = K.locate_offsets(blob, K.find_tables(blob))
    syms = [(s.address, s.type, s.name) for s in K.symbols_from_blob(blob, lo, t)]
    notes = vmlinux_file.read(vmlinux, where["__start_notes"], where["__stop_notes"] - where["__start_notes"])
    banner = vmlinux_file.read(vmlinux, where["linux_banner"], 256).split(b"\0")[0] + b"\0"
    with open(vmlinux, "rb") as f:
        btf = ELFFile(f).get_section_by_name(".BTF").data()
    out = tmp_path_factory.mktemp("guest-elf")
    raw = [(".notes", where["__start_notes"], notes), (".kx.banner", where["linux_banner"], banner)]
    guest_elf.build(str(out), syms, btf, raw)
    return d, syms, out / guest_elf.ELF_NAME, raw


def test_every_symbol_at_its_address(built):
    _d, syms, path, raw = built
    with open(path, "rb") as f:
        elf = ELFFile(f)
        got = collections.Counter((s["st_value"], s.name) for s in elf.get_section_by_name(".symtab").iter_symbols()
                                  if s.name)
        for name, address, data in raw:
            sec = elf.get_section_by_name(name)
            assert sec["sh_addr"] == address and sec.data() == data
    want = collections.Counter((a, n) for a, _t, n in syms if not any(c in n for c in "=, '\"\\"))
    missing = want - got
    assert not missing, list(missing)[:5]


def test_gdb_reads_types_and_variables(built):
    d, syms, path, _raw = built
    exprs = ["sizeof(struct task_struct)", "sizeof(struct pt_regs)", "(unsigned long)&init_task",
             "sizeof(init_task)", "(unsigned long)&((struct task_struct *)0)->comm"]
    mine = vmlinux_file.gdb_values(str(path), exprs)
    theirs = vmlinux_file.gdb_values(f"{d}/vmlinux", exprs)
    assert mine == theirs and None not in mine
    by_name = {n: a for a, _t, n in syms}
    assert mine[2] == by_name["init_task"]


def test_without_btf_symbols_only(built, tmp_path):
    """A kernel built without BTF: the file still has every symbol (gdb
    finds init_task's address) and no struct type."""
    d, syms, _path, raw = built
    # The syscall table as kx copies it from memory (up to its last entry):
    # its symbol keeps that length, not the distance to the next symbol.
    by_name = {n: a for a, _t, n in syms}
    table = by_name["sys_call_table"]
    after = min(a for a, _t, _n in syms if a > table)
    data = vmlinux_file.read(f"{d}/vmlinux", table, after - table)
    while data.endswith(bytes(8)):
        data = data[:-8]
    guest_elf.build(str(tmp_path), syms, b"", raw + [(".kx.copy.sys_call_table", table, data)])
    got = vmlinux_file.gdb_values(str(tmp_path / guest_elf.ELF_NAME),
                                  ["(unsigned long)&init_task", "sizeof(struct task_struct)",
                                   "(unsigned long)&sys_call_table", "sizeof(sys_call_table)"])
    assert got == [by_name["init_task"], None, table, len(data)]


def test_rebase_to_the_link_address():
    """A file built on a KASLR boot is linked where the kernel is without
    KASLR: kernel-image symbols and table entries move, per-cpu offsets and
    NULL entries do not; a kernel below the link address stays put."""
    import struct
    runtime, link = 0xFFFFFFFFA0000000, 0xFFFFFFFF81000000
    syms = [(0x1000, "A", "pcpu_thing"), (runtime, "T", "_text"), (runtime + 0x40, "T", "f")]
    table = struct.pack("<3Q", runtime + 0x40, 0, runtime)
    moved, raw = guest_elf.rebase(syms, [(".kx.copy.sys_call_table", runtime + 0x100, table)], link)
    assert moved == [(0x1000, "A", "pcpu_thing"), (link, "T", "_text"), (link + 0x40, "T", "f")]
    assert raw == [(".kx.copy.sys_call_table", link + 0x100, struct.pack("<3Q", link + 0x40, 0, link))]
    assert guest_elf.rebase(syms, [], 0xFFFFFFFFC0000000) == (syms, [])
