# SPDX-License-Identifier: GPL-2.0-or-later
"""The BTF decoder against the cached Debian kernels' .BTF sections and
blobs built here.

Ground truth for the layouts: the DWARF of the same build, through gdb's own
expression evaluator (tests/vmlinux_file.dwarf_offsets), for every member
kx's struct readers use and every pt_regs register.
"""
import importlib
import re
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, strategies as st

from gdbext import errors
from gdbext.decoders import btf as B, btf_c
from gdbext.kernel.structs import StructReader
from tests import vmlinux_file
from tests.unit.syscall_fixtures import cached_kernels

KERNELS = cached_kernels()
_READER_MODULES = ("tasks", "creds", "seccomp", "vdso")
_PT_REGS = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
            "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")
_MORE = [("struct mm_struct", "pgd"), ("struct tss_struct", "x86_tss"), ("struct rb_node", "rb_left"),
         ("struct rb_node", "rb_right"), ("struct signal_struct", "thread_head"),
         ("struct task_struct", "thread.sp"), ("struct task_struct", "cred"),
         ("struct task_struct", "real_cred"), ("struct task_struct", "pid"),
         ("struct task_struct", "files"), ("struct task_struct", "fs"),
         ("struct task_struct", "nsproxy"), ("struct list_head", "prev"),
         ("struct cred", "uid"), ("struct cred", "euid"), ("struct cred", "cap_effective"),
         ("struct file", "f_path.dentry"), ("struct dentry", "d_name.name"),
         ("struct dentry", "d_parent"), ("struct qstr", "name")]


def _pairs():
    """(struct, path) of every member kx's struct readers name, then pt_regs."""
    out = []
    for name in _READER_MODULES:
        mod = importlib.import_module(f"gdbext.kernel.{name}")
        for reader in vars(mod).values():
            if isinstance(reader, StructReader):
                out += [(reader.struct_name, p) for m in reader.members for p in m.paths]
    out += [("struct pt_regs", r) for r in _PT_REGS] + _MORE
    return list(dict.fromkeys(out))


@pytest.fixture(scope="module", params=KERNELS, ids=[k[0] for k in KERNELS])
def kernel(request):
    _series, d = request.param
    with open(f"{d}/vmlinux", "rb") as f:
        blob = ELFFile(f).get_section_by_name(".BTF").data()
    return d, blob, B.parse(blob)


def test_header(kernel):
    _d, blob, btf = kernel
    h = B.header(blob)
    assert (h.version, h.hdr_len) == (1, 24)
    assert h.type_off == 0 and h.str_off == h.type_len
    assert len(btf) > 50000
    assert btf.named("struct task_struct").kind == B.STRUCT


def test_member_offsets_match_dwarf(kernel):
    d, _blob, btf = kernel
    pairs = _pairs()
    dwarf = vmlinux_file.dwarf_offsets(f"{d}/vmlinux", pairs)
    compared = 0
    for (struct_name, path), want in dwarf.items():
        t = btf.named(struct_name)
        try:
            bits, _tid = btf.offsetof(t.id, path) if t else (None, None)
        except errors.DecodeError:
            bits = None
        if want is None:
            assert bits is None or bits % 8, (struct_name, path)   # absent, or a bitfield
            continue
        assert bits == want * 8, (struct_name, path, bits, want)
        compared += 1
    print(f"{d}: {compared} member offsets match DWARF")
    assert compared >= 50


def test_sizes_match_dwarf(kernel):
    d, _blob, btf = kernel
    names = ["struct task_struct", "struct pt_regs", "struct mm_struct", "struct cred",
             "struct thread_struct", "struct file", "struct vm_area_struct"]
    for n in names:
        t = btf.named(n)
        assert btf.sizeof(t.id) == t.size > 0


def test_generated_c_keeps_every_layout(kernel, tmp_path):
    """The C emitted from BTF, compiled by gcc -g, gives gdb the DWARF
    layouts: the members kx uses at the vmlinux DWARF's offsets, and every
    named struct and union at BTF's size."""
    d, _blob, btf = kernel
    (tmp_path / "t.c").write_text(btf_c.emit(btf))
    subprocess.run(["gcc", *btf_c.GCC_OPTIONS, "-c", str(tmp_path / "t.c"),
                    "-o", str(tmp_path / "t.o")], check=True)
    pairs = _pairs()
    want = vmlinux_file.dwarf_offsets(f"{d}/vmlinux", pairs)
    got = vmlinux_file.dwarf_offsets(str(tmp_path / "t.o"), pairs)
    assert sum(v is not None for v in want.values()) >= 50
    assert got == want
    e = btf_c.Emitter(btf)
    named = [t for t in btf.types[1:] if t.kind in (B.STRUCT, B.UNION) and t.name]
    sizes = vmlinux_file.gdb_values(str(tmp_path / "t.o"), [f"sizeof({e.tag(t)})" for t in named])
    assert sizes == [t.size for t in named]
    print(f"{d}: {len(named)} struct/union sizes match BTF")


def test_not_btf():
    with pytest.raises(errors.DecodeError, match="magic"):
        B.parse(b"\x7fELF" + bytes(40))
    with pytest.raises(errors.DecodeError, match="shorter"):
        B.parse(b"\x9f\xeb")


def _blob(types: bytes, strings: bytes) -> bytes:
    return B.HEADER.pack(B.MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


def _info(kind, vlen=0, kind_flag=False):
    return (kind << 24) | vlen | (int(kind_flag) << 31)


@given(st.lists(st.tuples(st.integers(1, 64), st.booleans()), min_size=1, max_size=40))
def test_struct_layout_round_trip(fields):
    """A struct of ints and bitfields, laid out here, decodes to the same
    bit offsets; a blob cut short is an error, never a wrong answer."""
    strings = b"\0int\0s\0" + b"".join(f"m{i}\0".encode() for i in range(len(fields)))
    int_name, s_name, first = 1, 5, 7
    types = struct.pack("<III", int_name, _info(B.INT), 8) + struct.pack("<I", 64)
    members, bit = b"", 0
    expected = []
    for i, (width, is_bitfield) in enumerate(fields):
        name_off = first + sum(len(f"m{j}") + 1 for j in range(i))
        size = width if is_bitfield else 0
        members += struct.pack("<III", name_off, 1, (size << 24) | bit)
        expected.append((f"m{i}", bit, size))
        bit += width if is_bitfield else 64
    types += struct.pack("<III", s_name, _info(B.STRUCT, len(fields), True), (bit + 63) // 64 * 8) + members
    btf = B.parse(_blob(types, strings))
    s = btf.named("struct s")
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in s.members] == expected
    for name, bit_off, _size in expected:
        assert btf.offsetof(s.id, name)[0] == bit_off
    with pytest.raises(errors.DecodeError):
        B.parse(_blob(types[:-4], strings))


def _same_c_type(btf_type: str, source_type: str) -> bool:
    """The same C type: `__user` dropped, a bare `unsigned` is `unsigned int`."""
    src = re.sub(r"\bunsigned\b(?!\s+(int|long|short|char))", "unsigned int", source_type.replace("__user", ""))
    return btf_type.replace(" ", "") == src.replace(" ", "")


def test_syscall_prototypes_name_the_ftrace_parameters(kernel):
    """BTF's __do_sys_* prototypes against the same syscalls' ftrace
    metadata (struct syscall_metadata in the vmlinux file): the same
    parameter names in the same order, the same types once `__user` (which
    BTF does not record) is dropped."""
    from gdbext.kernel.syscall_signatures import parse_metadata
    d, _blob, btf = kernel
    protos = btf_c.syscall_prototypes(btf)
    stems = {n[len("__do_sys_"):]: p for n, p in protos.items() if n.startswith("__do_sys_")}
    where = vmlinux_file.symbol_values(f"{d}/vmlinux", [f"__syscall_meta__{s}" for s in stems])

    def read(address, n):
        return vmlinux_file.read(f"{d}/vmlinux", address, n)
    compared = 0
    for stem, params in stems.items():
        meta = where.get(f"__syscall_meta__{stem}")
        if meta is None:
            continue
        args = parse_metadata(read, meta)["args"]
        assert [n for _t, n in params] == [n for _t, n in args], stem
        for (ctype, _n), (ftype, _m) in zip(params, args):
            assert _same_c_type(ctype, ftype), (stem, ctype, ftype)
        compared += 1
    print(f"{d}: {compared} BTF syscall prototypes match ftrace")
    # Only the out-of-line __do_sys_* bodies are in BTF: 24 of them on 5.10,
    # about 100 on 6.1 and later.
    assert compared >= 20
