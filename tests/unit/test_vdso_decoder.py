"""The vDSO decoder against real images and against garbage.

Fixtures: the kernel's own vDSO images, cut out of the cached Debian vmlinux
files (struct vdso_image's first two members are `void *data; unsigned long
size;` in 6.1 and 6.12, arch/x86/include/asm/vdso.h), and a vDSO-shaped
shared object built here with the system toolchain.  The ground truth for
symbols, versions and the build-id is binutils' readelf, not kx.
"""
import io
import re
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings, strategies as st

from gdbext.decoders import vdso
from gdbext.errors import DecodeError
from kxlab import kernels

from tests import vmlinux_file


_IMAGES = {}


def _vmlinux_image(k, symbol):
    """Bytes of `symbol`'s image in k's vmlinux: System.map gives the struct
    vdso_image, whose data pointer and size lead to the bytes in the file."""
    key = (str(k.root), symbol)
    if key in _IMAGES:
        return _IMAGES[key]
    addr = None
    with open(k.system_map) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == symbol:
                addr = int(parts[0], 16)
                break
    if addr is None:
        return None
    _IMAGES[key] = vmlinux_file.vdso_image(k.vmlinux, addr)
    return _IMAGES[key]


def _kernel_images():
    out = []
    for series in ("6.1", "6.12"):
        k = kernels.cached(series)
        for symbol in ("vdso_image_64", "vdso_image_32"):
            out.append(pytest.param((k, symbol), id=f"{series}-{symbol}",
                                    marks=pytest.mark.skipif(k is None, reason=f"no cached {series} kernel")))
    return out


@pytest.fixture(scope="module", params=_kernel_images())
def kernel_image(request, tmp_path_factory):
    k, symbol = request.param
    data = _vmlinux_image(k, symbol)
    assert data is not None, f"{k.vmlinux} has no {symbol}"
    path = tmp_path_factory.mktemp("vdso") / f"{k.series}-{symbol}.so"
    path.write_bytes(data)
    return k, symbol, path


_VERSION_SCRIPT = """LINUX_2.6 { global: __vdso_clock_gettime; __vdso_time; clock_gettime; local: *; };
"""
_SOURCE = """
int __vdso_clock_gettime(int c, void *ts) { return c + 1; }
long __vdso_time(long *t) { return 42; }
int clock_gettime(int c, void *ts) __attribute__((weak, alias("__vdso_clock_gettime")));
"""


@pytest.fixture(scope="module")
def built_image(tmp_path_factory):
    """A vDSO-shaped DSO built like the kernel's (-shared, versioned, build-id)."""
    if not shutil.which("gcc"):
        pytest.skip("no gcc")
    d = tmp_path_factory.mktemp("built")
    (d / "v.c").write_text(_SOURCE)
    (d / "v.lds").write_text(_VERSION_SCRIPT)
    subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-nostdlib", "-Wl,--build-id=sha1",
                    "-Wl,--hash-style=both", "-Wl,-soname=linux-vdso.so.1",
                    f"-Wl,--version-script={d / 'v.lds'}", "-o", str(d / "v.so"), str(d / "v.c")],
                   check=True)
    return d / "v.so"


def readelf_truth(path):
    """{name: (value, version, bind)} and the build-id, as binutils sees them."""
    syms = {}
    out = subprocess.run(["readelf", "-W", "--dyn-syms", str(path)], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*\d+:\s+([0-9a-f]+)\s+\d+\s+(\w+)\s+(\w+)\s+\w+\s+(\w+)\s+(\S+)$", line)
        if not m or m.group(4) == "UND":
            continue
        value, typ, bind, ndx, name = m.groups()
        if typ == "OBJECT" and ndx == "ABS":
            continue  # the version-definition symbols
        base, _, ver = name.partition("@")
        syms[base] = (int(value, 16), ver.lstrip("@") or None, bind.lower())
    notes = subprocess.run(["readelf", "-n", str(path)], check=True, capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", notes)
    return syms, m.group(1) if m else None


def test_kernel_image_matches_readelf(kernel_image):
    k, symbol, path = kernel_image
    img = vdso.parse_vdso(path.read_bytes())
    syms, build_id = readelf_truth(path)
    assert {s.name: (s.value, s.version, s.bind) for s in img.symbols} == syms
    assert img.build_id == build_id
    assert img.bits == (32 if symbol == "vdso_image_32" else 64)
    assert img.load_address == 0  # vdso.lds.S links the image at 0
    assert img.size == path.stat().st_size
    assert img.soname == ("linux-gate.so.1" if img.bits == 32 else "linux-vdso.so.1")
    assert "LINUX_2.6" in img.versions
    # The "Linux" note's LINUX_VERSION_CODE (sublevel clamped to 255) is
    # this kernel's version; Debian's BUILD_SALT note is its release string.
    major, minor, sub = (int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", k.version).groups())
    assert img.linux_version == (major << 16) + (minor << 8) + min(sub, 255)
    assert img.build_salt is None or img.build_salt.startswith(f"{major}.{minor}")
    for name in ("__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time"):
        assert img.symbol(name) is not None and img.symbol(name).type == "func"
    if img.bits == 32:
        assert img.symbol("__kernel_vsyscall").version == "LINUX_2.5"


def test_unpatched_kernel_vsyscall_is_int80():
    """In the file the ALTERNATIVE_2 slot is still NOPs (the kernel patches
    it at boot), so __kernel_vsyscall falls through to int $0x80."""
    images = [_vmlinux_image(k, "vdso_image_32") for k in map(kernels.cached, ("6.1", "6.12")) if k]
    if not images:
        pytest.skip("no cached kernel")
    for data in images:
        off = vdso.parse_vdso(data).offset_of("__kernel_vsyscall")
        assert data[off:off + 3] == b"\x51\x52\x55"  # the pushes (vdso32/system_call.S)
        assert vdso.decode_kernel_vsyscall(data[off:off + 16]).kind == "int 0x80"


def test_built_image_matches_readelf(built_image):
    img = vdso.parse_vdso(built_image.read_bytes())
    syms, build_id = readelf_truth(built_image)
    assert {s.name: (s.value, s.version, s.bind) for s in img.symbols} == syms
    assert set(syms) == {"__vdso_clock_gettime", "__vdso_time", "clock_gettime"}
    assert img.build_id == build_id and len(build_id) == 40
    assert img.soname == "linux-vdso.so.1"
    assert img.linux_version is None


def test_trampoline_bytes():
    push = b"\x51\x52\x55"
    assert vdso.decode_kernel_vsyscall(push + b"\x89\xe5\x0f\x34\xcd\x80").kind == "sysenter"
    assert vdso.decode_kernel_vsyscall(push + b"\x89\xcd\x0f\x05\xcd\x80").kind == "syscall"
    assert vdso.decode_kernel_vsyscall(push + b"\x0f\x1f\x40\x00\xcd\x80").kind == "int 0x80"
    assert vdso.decode_kernel_vsyscall(push + b"\x90\x90\x90\x90\xcd\x80").kind == "int 0x80"
    assert vdso.decode_kernel_vsyscall(b"\xc3").kind == "unknown"
    # 7.2: the SYSFAST32 alternative first, a NOP once patched.
    assert vdso.decode_kernel_vsyscall(b"\x0f\x1f\x00" + push + b"\x89\xe5\x0f\x34\xcd\x80").kind == "sysenter"
    assert vdso.decode_kernel_vsyscall(b"\xcd\x80\xc3" + push + b"\x89\xe5\x0f\x34").kind == "int 0x80"


def test_vsyscall_stub():
    # mov $96,%rax; syscall; ret -- vsyscall_emu_64.S's gettimeofday stub
    assert vdso.decode_vsyscall_stub(b"\x48\xc7\xc0\x60\x00\x00\x00\x0f\x05\xc3\xcc") == 96
    assert vdso.decode_vsyscall_stub(b"\xcc" * 16) is None
    assert vdso.decode_vsyscall_stub(b"") is None


def test_garbage_is_a_decode_error():
    for bad in (b"", b"\x7fELF", b"\x7fELF" + b"\0" * 60, b"MZ" + b"\0" * 100, "text", None, 5):
        with pytest.raises(DecodeError):
            vdso.parse_vdso(bad)


def _reference_images():
    out = []
    for series in ("6.1", "6.12"):
        k = kernels.cached(series)
        if k is not None:
            out.append(_vmlinux_image(k, "vdso_image_64"))
            out.append(_vmlinux_image(k, "vdso_image_32"))
            break
    return out


_REFS = _reference_images()
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _only_decode_errors(data):
    try:
        img = vdso.parse_vdso(data)
    except DecodeError:
        return
    img.to_dict()  # whatever parses must also render


@_SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _only_decode_errors(data)


@_SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_behind_an_elf_header(tail):
    _only_decode_errors(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x03\x00" + tail)


@pytest.mark.skipif(not _REFS, reason="no cached kernel")
@_SETTINGS
@given(st.data())
def test_truncated_real_images(data):
    ref = data.draw(st.sampled_from(_REFS))
    _only_decode_errors(ref[:data.draw(st.integers(0, len(ref)))])


@pytest.mark.skipif(not _REFS, reason="no cached kernel")
@_SETTINGS
@given(st.data())
def test_mutated_real_images(data):
    """Header, section and segment fields overwritten with random values."""
    ref = bytearray(data.draw(st.sampled_from(_REFS)))
    elf = ELFFile(io.BytesIO(bytes(ref)))
    shoff = elf["e_shoff"]
    shend = shoff + elf["e_shnum"] * elf["e_shentsize"]
    phend = elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]
    for _ in range(data.draw(st.integers(1, 8))):
        # the ELF and program headers, the section headers, or anywhere
        pos = data.draw(st.one_of(st.integers(0, phend - 1), st.integers(shoff, shend - 1),
                                  st.integers(0, len(ref) - 1)))
        ref[pos] = data.draw(st.integers(0, 255))
    _only_decode_errors(bytes(ref))

