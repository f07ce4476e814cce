"""The one reader of the vmlinux file (gdbext/kernel/vmlinux.py), against a
small vmlinux-shaped ELF built here (a kernel text address, a NOTE section
with a build ID, zero-based per-cpu data, .bss) and against the cached
Debian vmlinux files, with binutils' readelf as ground truth."""
import os
import re
import shutil
import struct
import subprocess

import pytest

from gdbext import errors
from gdbext.kernel import vmlinux as V
from tests.unit.syscall_fixtures import FakeMemory, cached_kernels

KERNELS = cached_kernels()
TEXT = 0xFFFFFFFF81000000
BANNER = "Linux version 6.99.0-test (kx) #1 SMP"
_SOURCE = f"""
    .text
    .weak __crc_start_func
    .globl start_func
    .type start_func,@function
start_func: ret
    .size start_func, 1
    .section .rodata,"a"
    .globl linux_banner
    .type linux_banner,@object
linux_banner: .asciz "{BANNER}"
    .size linux_banner, .-linux_banner
    .section .data..percpu,"aw"
    .globl pcpu_thing
pcpu_thing: .quad 0x1122334455667788
    .bss
    .globl big_bss
    .type big_bss,@object
big_bss: .zero 4096
    .size big_bss, 4096
"""
# The kernel's vmlinux.lds.h shape: per-cpu data linked at 0, loaded after .notes.
# Before 5.19 genksyms wrote each export's CRC as an absolute symbol in a
# linker script like this one (`__crc_sym = 0x...;`): a number that happens
# to look like a user address.
CRC = 0x4319D3 - 0xBCF29
_SCRIPT = f"""__crc_start_func = {CRC:#x};
SECTIONS {{
  . = {TEXT:#x};
  .text : {{ *(.text) }}
  .rodata : {{ *(.rodata) }}
  .notes : {{ *(.note.*) }}
  .data..percpu 0 : AT(ADDR(.notes) + SIZEOF(.notes)) {{ *(.data..percpu) }}
  . = ADDR(.notes) + SIZEOF(.notes) + SIZEOF(.data..percpu);
  .bss : {{ *(.bss) }}
  /DISCARD/ : {{ *(.note.GNU-stack) }}
}}
"""


def readelf(*args):
    return subprocess.run(["readelf", "-W", *args], capture_output=True, text=True, check=True).stdout


def readelf_build_id(path):
    return re.search(r"Build ID: ([0-9a-f]+)", readelf("-n", str(path))).group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not (shutil.which("gcc") and shutil.which("ld") and shutil.which("readelf")):
        pytest.skip("needs gcc, ld and readelf")
    d = tmp_path_factory.mktemp("vmlinux")
    (d / "t.S").write_text(_SOURCE)
    (d / "v.lds").write_text(_SCRIPT)
    subprocess.run(["gcc", "-c", str(d / "t.S"), "-o", str(d / "t.o")], check=True)
    subprocess.run(["ld", "-T", str(d / "v.lds"), "--build-id=sha1", "-o", str(d / "vmlinux"), str(d / "t.o")],
                   check=True)
    return d / "vmlinux"


def test_reads_at_link_addresses(built):
    img = V.image(str(built))
    banner = img.read(TEXT + 1, 4096)
    assert banner == BANNER.encode() + b"\0"            # cut at the end of .rodata
    assert V.read_cstring(img.read, TEXT + 1) == BANNER
    assert img.read(TEXT, 1) == b"\xc3"
    assert img.section_at(TEXT + 1).name == ".rodata"
    bss = img.section(".bss").address
    with pytest.raises(errors.DecodeError, match="not in a file-backed section"):
        img.read(bss, 8)                                # NOBITS: no bytes in the file
    with pytest.raises(errors.DecodeError):
        img.read(0x1000, 8)


def test_symbols_sections_and_notes(built):
    img = V.image(str(built))
    syms = {name: (value, size) for value, size, name in img.symbols()}
    assert syms["start_func"] == (TEXT, 1) and syms["linux_banner"] == (TEXT + 1, len(BANNER) + 1)
    assert "pcpu_thing" not in syms                     # address 0: not a place in the image
    assert syms["big_bss"][1] == 4096
    assert img.zero_based_sections == [".data..percpu"]
    address, note, build_id = img.build_id_note()
    assert build_id == readelf_build_id(built)
    assert address == img.section(".notes").address
    namesz, descsz, ntype = struct.unpack_from("<III", note)
    assert (namesz, descsz, ntype, note[12:16]) == (4, 20, 3, b"GNU\0") and len(note) == 36


def test_absolute_symbols_name_no_address(built):
    """An absolute (SHN_ABS) symbol is a number: it may be looked up, but
    it never names an address (5.10 named a user return address
    `__crc___sock_recv_wifi_status+0xbcf29`)."""
    from gdbext.kernel.symbols import SymbolTable
    img = V.image(str(built))
    marked = {s.name: s for s in img.symbol_entries()}
    assert marked["__crc_start_func"].absolute and marked["__crc_start_func"].value == CRC
    assert not marked["start_func"].absolute
    assert "ABS" in next(l for l in readelf("-s", str(built)).splitlines() if "__crc_start_func" in l)
    assert (CRC, 0, "__crc_start_func") in img.symbols()
    assert "__crc_start_func" not in {name for _v, _s, name in img.symbols(absolute=False)}
    table = SymbolTable(str(built))
    assert table.lookup("__crc_start_func") == CRC
    assert table.describe(CRC + 0xBCF29) is None and table.format(CRC) is None
    assert table.names_at(CRC) == []
    assert table.format(TEXT) == "start_func" and table.names_at(TEXT) == ["start_func"]


def test_opened_once_and_again_when_rebuilt(built, tmp_path):
    copy = tmp_path / "vmlinux"
    shutil.copy(built, copy)
    first = V.image(str(copy))
    assert V.image(str(copy)) is first
    st = os.stat(copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert V.file_key(str(copy)) != (str(copy), st.st_mtime_ns, st.st_size)
    second = V.image(str(copy))
    assert second is not first and second.read(TEXT, 1) == b"\xc3"
    assert V.file_key(str(tmp_path / "missing")) == (str(tmp_path / "missing"), None, None)


def test_not_an_elf(tmp_path):
    bad = tmp_path / "vmlinux"
    bad.write_bytes(b"\x7fELF" + bytes(12))
    with pytest.raises(Exception):
        V.image(str(bad))


def test_read_helpers_on_fake_memory():
    m = FakeMemory()
    m.put(0x1000, struct.pack("<3Q", 1, 2, 3))
    assert V.read_u64s(m.read, 0x1000, 3) == [1, 2, 3]
    with pytest.raises(errors.DecodeError, match="cut short"):
        V.read_u64s(m.read, 0x1008, 3)
    m.put(0x2000, b"a" * 100 + b"\0")
    assert V.read_cstring(m.read, 0x2000) == "a" * 100
    with pytest.raises(errors.DecodeError, match="no NUL within 64"):
        V.read_cstring(m.read, 0x2000, cap=64)


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
@pytest.mark.parametrize("series,d", KERNELS, ids=[k[0] for k in KERNELS])
def test_debian_vmlinux(series, d):
    if not shutil.which("readelf"):
        pytest.skip("binutils' readelf is not installed")
    path = os.path.join(d, "vmlinux")
    img = V.image(path)
    assert img.build_id_note()[2] == readelf_build_id(path)
    syms = {name: value for value, _size, name in img.symbols()}
    banner = V.read_cstring(img.read, syms["linux_banner"], 512)
    assert banner.startswith(f"Linux version {series}")
    # Per-cpu data is linked at 0 up to 6.14; 6.15+ ("x86/percpu/64: Use
    # relative percpu offsets") links it among the kernel's data.
    percpu = re.search(r"\]\s+\.data\.\.percpu\s+\S+\s+([0-9a-f]+)", readelf("-SW", path)).group(1)
    assert (".data..percpu" in img.zero_based_sections) == (int(percpu, 16) == 0)
    assert img.section(".bss") is not None and not img.section(".bss").file_backed
    absolute = {s.name for s in img.symbol_entries() if s.absolute}
    abs_readelf = {p[7] for p in (l.split() for l in readelf("-s", path).splitlines())
                   if len(p) >= 8 and p[6] == "ABS" and p[3] in ("NOTYPE", "OBJECT", "FUNC") and int(p[1], 16)}
    assert absolute == abs_readelf and "phys_startup_64" in absolute
