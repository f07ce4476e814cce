# SPDX-License-Identifier: GPL-2.0-or-later
"""The kallsyms decoder against the cached Debian kernels and small tables
built here.

Ground truth: the vmlinux's ELF symbol table says where the kallsyms arrays
are (used only to check what find_tables found with no symbol at all), and
System.map lists the symbols.  Every decoded symbol must be in System.map at
the same address; the differences allowed are the kernel's own:
- 5.10's kallsyms keeps the compiler's `.L` labels, which scripts/mksysmap
  drops from System.map;
- with CONFIG_KALLSYMS_ABSOLUTE_PERCPU, scripts/kallsyms.c types per-cpu
  symbols `A` (System.map says d/D);
- System.map has symbols kallsyms leaves out: absolute values
  (text_size, phys_startup_64, ...), the kallsyms arrays themselves (up to
  6.1), init_per_cpu__* (6.12).
"""
import struct

import pytest
from hypothesis import given, strategies as st

from gdbext import errors
from gdbext.decoders import kallsyms as K
from tests import vmlinux_file
from tests.unit.syscall_fixtures import cached_kernels

KERNELS = cached_kernels()
_ARRAYS = ("kallsyms_offsets", "kallsyms_relative_base", "kallsyms_num_syms", "kallsyms_names",
           "kallsyms_markers", "kallsyms_token_table", "kallsyms_token_index")
# What System.map may have that kallsyms leaves out (absolute values, the
# kallsyms arrays up to 6.1, init_per_cpu__* and Xen's ELF-note values).
_MAP_ONLY = ("kallsyms_", "init_per_cpu__", "xen_elfnote_")
_MAP_ONLY_NAMES = {"text_size", "phys_startup_64", "kexec_control_code_size"}


@pytest.fixture(scope="module", params=KERNELS, ids=[k[0] for k in KERNELS])
def kernel(request):
    series, d = request.param
    vmlinux = f"{d}/vmlinux"
    where = vmlinux_file.symbol_values(vmlinux, _ARRAYS)
    # A window of the image around the arrays, starting 1 MiB before them:
    # what kx reads from memory, cut from the file.
    lo = min(where.values()) - (1 << 20)
    hi = where["kallsyms_token_index"] + (4 << 20)
    blob = vmlinux_file.read(vmlinux, lo, hi - lo)
    return series, d, where, lo, blob


def test_find_tables_without_symbols(kernel):
    series, _d, where, lo, blob = kernel
    t = K.locate_offsets(blob, K.find_tables(blob))
    assert lo + t.num_syms == where["kallsyms_num_syms"]
    assert lo + t.names == where["kallsyms_names"]
    assert lo + t.markers == where["kallsyms_markers"]
    assert lo + t.token_table == where["kallsyms_token_table"]
    assert lo + t.token_index == where["kallsyms_token_index"]
    assert lo + t.offsets == where["kallsyms_offsets"]
    if "kallsyms_relative_base" in where:
        assert lo + t.relative_base == where["kallsyms_relative_base"]
    else:
        assert t.relative_base is None and series not in ("5.10", "6.1", "6.12")
    assert t.count == struct.unpack_from("<I", blob, where["kallsyms_num_syms"] - lo)[0]


def test_every_symbol_is_in_system_map(kernel):
    _series, d, _where, lo, blob = kernel
    t = K.locate_offsets(blob, K.find_tables(blob))
    syms = K.symbols_from_blob(blob, lo, t)
    assert len(syms) == t.count > 40000
    smap = vmlinux_file.system_map(f"{d}/System.map")
    letters = {(a, n): letter for a, letter, n in smap}
    per_cpu_end = next(a for a, _l, n in smap if n == "__per_cpu_end")
    checked = 0
    for s in syms:
        if s.name.startswith(".L"):
            continue
        assert (s.address, s.name) in letters, (hex(s.address), s.type, s.name)
        want = letters[(s.address, s.name)]
        if s.type == "A" and want in "dD":
            assert s.address <= per_cpu_end, s    # a per-cpu symbol made absolute
        else:
            assert s.type == want, s
        checked += 1
    found = {(s.address, s.name) for s in syms}
    left_out = [n for a, _l, n in smap if (a, n) not in found]
    assert all(n.startswith(_MAP_ONLY) or n in _MAP_ONLY_NAMES for n in left_out), left_out
    # Counts (6.1: 87347 symbols, 14 System.map-only; 6.12: 154686, 5).
    print(f"{d}: {checked} kallsyms symbols match System.map; {len(left_out)} System.map-only")


def test_garbage_has_no_tables():
    with pytest.raises(errors.DecodeError):
        K.find_tables(bytes(range(256)) * 64)


def _build(names, tokens_used):
    """A kallsyms table over single-character tokens (the digits present)."""
    token_list = [bytes([i]) for i in range(256)]
    token_list[0] = b"\x01"   # no empty token: every token expands to something
    table = b"".join(t + b"\0" for t in token_list)
    index, pos = [], 0
    for t in token_list:
        index.append(pos)
        pos += len(t) + 1
    stream = bytearray()
    for letter, name in names:
        body = (letter + name).encode("latin-1")
        n = len(body)
        stream += bytes([n]) if n < 0x80 else bytes([0x80 | (n & 0x7F), n >> 7])
        stream += body
    return bytes(stream), table, struct.pack("<256H", *index)


_names = st.lists(st.tuples(st.sampled_from("TtDdbBrR"),
                            st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.", min_size=1,
                                    max_size=300)), min_size=1, max_size=50)


@given(_names)
def test_names_round_trip(names):
    stream, table, index = _build(names, None)
    assert K.expand_names(stream, len(names), K.tokens(table, index)) == list(names)
    assert K.names_length(stream, len(names)) == len(stream)


@given(st.lists(st.integers(0, (1 << 30) - 1), min_size=1, max_size=200),
       st.integers(0xFFFFFFFF80000000, 0xFFFFFFFFC0000000))
def test_offsets_modes(values, base):
    values.sort()
    raw = struct.pack(f"<{len(values)}I", *values)
    assert K.addresses(raw, len(values), K.RELATIVE, base) == [base + v for v in values]
    assert K.relative_mode(raw, len(values)) == K.RELATIVE
    negative = struct.pack(f"<{len(values)}i", *[-1 - v for v in values])
    assert K.addresses(negative, len(values), K.ABSOLUTE_PERCPU, base) == [base + v for v in values]
    here = 0xFFFFFFFF82000000
    rel = [base - (here + 4 * i) for i in range(len(values))]
    if all(-(1 << 31) <= r < (1 << 31) for r in rel):
        raw = struct.pack(f"<{len(rel)}i", *rel)
        assert K.addresses(raw, len(rel), K.PLACE_RELATIVE, offsets_address=here) == [base] * len(rel)


def test_short_names_stream():
    stream, table, index = _build([("T", "abc")], None)
    with pytest.raises(errors.DecodeError):
        K.expand_names(stream, 2, K.tokens(table, index))


def _i386_kernel():
    import glob
    import os
    found = sorted(glob.glob(os.path.join(os.environ.get("KX_CACHE") or os.path.expanduser("~/.cache/kx"),
                                          "kernels-i386", "*", "vmlinux")))
    return os.path.dirname(found[-1]) if found else None


@pytest.mark.skipif(_i386_kernel() is None, reason="the i386 686-pae kernel is not cached (lab fetch --arch i386)")
def test_i386_four_byte_relative_base():
    """A 32-bit kernel: kallsyms_relative_base is a 4-byte long right before
    kallsyms_num_syms (6.1); every decoded symbol is System.map's."""
    d = _i386_kernel()
    where = vmlinux_file.symbol_values(f"{d}/vmlinux", _ARRAYS)
    lo = min(where.values()) - (1 << 20)
    blob = vmlinux_file.read(f"{d}/vmlinux", lo, where["kallsyms_token_index"] + 4096 - lo)
    with pytest.raises(errors.DecodeError):
        K.locate_offsets(blob, K.find_tables(blob))          # an 8-byte base is not there
    t = K.locate_offsets(blob, K.find_tables(blob), pointer_size=4)
    assert (lo + t.offsets, lo + t.relative_base) == (where["kallsyms_offsets"], where["kallsyms_relative_base"])
    syms = K.symbols_from_blob(blob, lo, t)
    smap = {(a, n) for a, _l, n in vmlinux_file.system_map(f"{d}/System.map")}
    assert len(syms) == t.count > 40000 and all((s.address, s.name) in smap for s in syms)
