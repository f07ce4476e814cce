"""The syscall model's pure parts: handler names, ftrace metadata from byte
fixtures, the dispatch-switch decoder on hand-assembled code, the memory
checks; then the whole file model against each cached Debian vmlinux, with
binutils' readelf for symbols and the kernel's own syscall_*.tbl as ground
truth (skipped when the kernels or sources are not on disk)."""
import bisect
import glob
import json
import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, strategies as st

from gdbext import errors
from gdbext.kernel import syscalls as S
from tests import kernel_source

MASK32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------
# Names

@pytest.mark.parametrize("symbol,expected", [
    ("__x64_sys_openat", ("openat", True, False)),
    ("__ia32_sys_write", ("write", True, False)),
    ("__ia32_compat_sys_fcntl64", ("fcntl64", True, True)),
    ("__ia32_compat_sys_ia32_mmap", ("ia32_mmap", True, True)),
    ("__x32_compat_sys_ioctl", ("ioctl", True, True)),
    ("__x64_sys_ni_syscall", (None, False, False)),
    ("__ia32_sys_ni_syscall", (None, False, False)),
    ("sys_ni_syscall", (None, False, False)),
    ("sys_read", ("read", True, False)),            # before 4.17: no pt_regs wrappers
    ("compat_sys_open", ("open", True, True)),
    ("do_sys_open", (None, False, False)),
    ("__x64_sys_", (None, False, False)),
    (None, (None, False, False)),
])
def test_handler_name(symbol, expected):
    assert S.handler_name(symbol) == expected


def test_expected_symbol_per_abi():
    assert S.is_expected_symbol("__x64_sys_read", "64")
    assert not S.is_expected_symbol("__ia32_sys_read", "64")
    assert S.is_expected_symbol("__ia32_compat_sys_open", "32")
    assert S.is_expected_symbol("__ia32_sys_write", "32")
    assert not S.is_expected_symbol("__x64_sys_write", "32")
    assert not S.is_expected_symbol("evil_hook", "64")
    assert S.is_expected_symbol("__x32_compat_sys_ioctl", "x32")


def test_normalize_abi():
    assert [S.normalize_abi(a) for a in ("64", "x86_64", "32", "ia32", "i386", "x32", 64, 32)] == \
        ["64", "64", "32", "32", "32", "x32", "64", "32"]
    with pytest.raises(errors.BadArgument, match="unknown ABI"):
        S.normalize_abi("arm64")


# ---------------------------------------------------------------------------
# ftrace metadata (struct syscall_metadata, include/trace/syscall.h)

class FakeMemory:
    """Sparse link-time memory: read(addr, n) like ElfImage.read (short at
    the end of a region)."""

    def __init__(self):
        self.regions = {}

    def put(self, addr, data):
        self.regions[addr] = bytes(data)

    def cstr(self, addr, s):
        self.put(addr, s.encode() + b"\0")

    def read(self, addr, n):
        for start, data in self.regions.items():
            if start <= addr < start + len(data):
                return data[addr - start:addr - start + n]
        raise errors.DecodeError(f"unmapped {addr:#x}")


def metadata_fixture(nb=4, name="sys_openat"):
    m = FakeMemory()
    types = ["int", "const char __user *", "int", "umode_t"][:nb]
    args = ["dfd", "filename", "flags", "mode"][:nb]
    m.put(0x1000, struct.pack("<QiiQQ", 0x2000, -1, nb, 0x3000 if nb else 0, 0x3100 if nb else 0)
          + bytes(32))  # list_head + enter/exit events
    m.cstr(0x2000, name)
    m.put(0x3000, struct.pack(f"<{nb}Q", *[0x4000 + 0x40 * i for i in range(nb)]))
    m.put(0x3100, struct.pack(f"<{nb}Q", *[0x5000 + 0x40 * i for i in range(nb)]))
    for i, (t, a) in enumerate(zip(types, args)):
        m.cstr(0x4000 + 0x40 * i, t)
        m.cstr(0x5000 + 0x40 * i, a)
    return m


def test_parse_metadata():
    m = metadata_fixture()
    meta = S.parse_metadata(m.read, 0x1000)
    assert meta == {"name": "sys_openat", "nr": -1,
                    "args": [("int", "dfd"), ("const char __user *", "filename"),
                             ("int", "flags"), ("umode_t", "mode")]}


def test_parse_metadata_no_args():
    meta = S.parse_metadata(metadata_fixture(nb=0, name="sys_getpid").read, 0x1000)
    assert meta["name"] == "sys_getpid" and meta["args"] == []


def test_parse_metadata_rejects_garbage():
    m = metadata_fixture()
    m.put(0x1000, struct.pack("<QiiQQ", 0x2000, -1, 9, 0x3000, 0x3100))
    with pytest.raises(errors.DecodeError, match="nb_args 9"):
        S.parse_metadata(m.read, 0x1000)
    m = FakeMemory()
    m.put(0x1000, struct.pack("<QiiQQ", 0x2000, -1, 0, 0, 0))
    m.put(0x2000, b"x" * 300)                      # no NUL
    with pytest.raises(errors.DecodeError, match="no NUL"):
        S.parse_metadata(m.read, 0x1000)


def test_signature_format():
    sig = S.Signature("openat", [("int", "dfd"), ("const char __user *", "filename")], "ftrace")
    assert sig.format() == "openat(int dfd, const char __user *filename)"
    assert S.Signature("getpid", [], "ftrace").format() == "getpid(void)"
    assert sig.as_dict()["args"][1] == {"type": "const char __user *", "name": "filename"}


def test_order_args():
    rev = [("umode_t", "mode"), ("int", "flags"), ("const char *", "filename"), ("int", "dfd")]
    want = list(reversed(rev))
    assert S.order_args(rev, None, inlined=True) == want
    assert S.order_args(want, None, inlined=False) == want
    # The native metadata's order wins whenever it names the same parameters.
    assert S.order_args(rev, ["dfd", "filename", "flags", "mode"], inlined=False) == want
    assert S.order_args(rev, ["other"], inlined=True) == want


# ---------------------------------------------------------------------------
# The dispatch switch

START = 0xFFFFFFFF81003320
H = {name: 0xFFFFFFFF81100000 + 0x100 * i for i, name in
     enumerate(["fentry", "read", "write", "open", "ni", "exit", "hook", "close"])}


class Asm:
    """Just enough of an assembler for switch fixtures (rel32 jumps)."""

    def __init__(self, start=START):
        self.start = start
        self.items = []     # (bytes | (kind, label))
        self.labels = {}

    def size(self):
        n = 0
        for it in self.items:
            n += len(it) if isinstance(it, bytes) else {"jcc": 6, "jmp": 5, "call": 5}[it[0]]
        return n

    def raw(self, b):
        self.items.append(bytes(b))
        return self

    def label(self, name):
        self.labels[name] = self.start + self.size()
        return self

    def cmp(self, imm):
        if -128 <= imm <= 127:
            return self.raw(b"\x83\xfe" + struct.pack("<b", imm))      # cmp $imm8,%esi
        return self.raw(b"\x81\xfe" + struct.pack("<I", imm & MASK32))  # cmp $imm32,%esi

    def test(self):
        return self.raw(b"\x85\xf6")                                    # test %esi,%esi

    def jcc(self, cc, target):
        self.items.append(("jcc", cc, target))
        return self

    def jmp(self, target):
        self.items.append(("jmp", None, target))
        return self

    def call(self, target):
        self.items.append(("call", None, target))
        return self

    def bytes(self):
        out = b""
        for it in self.items:
            if isinstance(it, bytes):
                out += it
                continue
            kind, cc, target = it
            dest = self.labels.get(target, target) if isinstance(target, str) else target
            here = self.start + len(out)
            if kind == "jcc":
                out += bytes([0x0F, 0x80 | cc]) + struct.pack("<i", dest - (here + 6))
            else:
                out += bytes([0xE9 if kind == "jmp" else 0xE8]) + struct.pack("<i", dest - (here + 5))
        return out


JE, JNE, JBE, JA, JB, JAE, JL, JG = 0x4, 0x5, 0x6, 0x7, 0x2, 0x3, 0xC, 0xF


def small_switch(prologue="fentry"):
    """switch (nr) { case 0: read; case 1: write; case 2: open; case 5: exit
    (noreturn call); default: ni }, compiled like gcc does."""
    a = Asm()
    if prologue == "fentry":
        a.raw(b"\xf3\x0f\x1e\xfa").call(H["fentry"])
    elif prologue == "nop5":                                   # ftrace site patched at boot
        a.raw(b"\x0f\x1f\x44\x00\x00")
    a.cmp(2).jcc(JE, "L2").jcc(JA, "Lhi")
    a.test().jcc(JE, "L0").jmp(H["write"])
    a.label("L2").jmp(H["open"])
    a.label("L0").jmp(H["read"])
    a.label("Lhi").cmp(5).jcc(JNE, "Ldef").call(H["exit"])
    a.label("Ldef").jmp(H["ni"])
    a.raw(b"\x66\x2e\x0f\x1f\x84\x00\x00\x00\x00\x00\x0f\x1f\x00")   # alignment padding
    return a.bytes()


@pytest.mark.parametrize("prologue", ["fentry", "nop5", None])
def test_decode_small_switch(prologue):
    sw = S.decode_switch(small_switch(prologue), START)
    assert [sw.target(n) for n in range(7)] == [H["read"], H["write"], H["open"], H["ni"], H["ni"],
                                                 H["exit"], H["ni"]]
    assert sw.target(MASK32) == sw.default == H["ni"]
    assert sw.nr_syscalls == 6
    assert sw.cases() == [sw.target(n) for n in range(6)]


def test_decode_short_jumps_and_signed_conditions():
    # cmp $10,%esi; jl L (signed: 0..9 and 0x80000000..); jmp ni; L: jmp read
    code = b"\x83\xfe\x0a" + b"\x7c\x05" + b"\xe9" + struct.pack("<i", H["ni"] - (START + 10)) \
        + b"\xe9" + struct.pack("<i", H["read"] - (START + 15))
    sw = S.decode_switch(code, START)
    assert sw.target(9) == H["read"] and sw.target(10) == H["ni"]
    assert sw.target(0x80000000) == H["read"]        # negative as a signed int
    assert sw.target(MASK32) == H["read"]


def test_decode_hooked_switch_entry():
    """An inline hook (jmp at the first byte) sends every nr elsewhere."""
    code = bytearray(small_switch())
    hook = b"\xe9" + struct.pack("<i", H["hook"] - (START + 5))
    code[:5] = hook
    sw = S.decode_switch(bytes(code), START)
    assert {sw.target(n) for n in (0, 1, 5, MASK32)} == {H["hook"]}
    good = S.decode_switch(small_switch(), START)
    problems = S.check_switch("64", sw, good, 0, 6, lambda a: None)
    assert [p.nr for p in problems] == [0, 1, 2, 3, 4, 5, None]
    assert {p.kind for p in problems} == {"switch-differs"}
    assert S.check_switch("64", good, good, 0, 6, lambda a: None) == []


def test_decode_one_redirected_case():
    code = small_switch()
    good = S.decode_switch(code, START)
    # Retarget `case 2` (the jmp to open) to the hook.
    bad = bytearray(code)
    for off in range(len(code) - 5):
        if code[off] == 0xE9 and START + off + 5 + struct.unpack_from("<i", code, off + 1)[0] == H["open"]:
            bad[off + 1:off + 5] = struct.pack("<i", H["hook"] - (START + off + 5))
            break
    else:
        raise AssertionError("no jmp to open in the fixture")
    sw = S.decode_switch(bytes(bad), START)
    problems = S.check_switch("64", sw, good, 0, 6, lambda a: "hook" if a == H["hook"] else None)
    assert [(p.nr, p.value, p.expected) for p in problems] == [(2, H["hook"], H["open"])]
    assert "hook" in problems[0].message


def test_check_switch_undecodable():
    good = S.decode_switch(small_switch(), START)
    (p,) = S.check_switch("32", None, good, 0, 6, lambda a: None, error="unexpected instruction")
    assert p.kind == "switch-undecodable" and p.nr is None and "ia32_sys_call" in p.message


@pytest.mark.parametrize("code,needle", [
    (b"\x83\xfe\x02\x74\x01\xc3\xe9\x00\x00\x00\x00", "ret"),                 # a path ending in ret
    (b"\x83\xfe\x02\xff\xe0", "unexpected instruction"),                       # jmp *%rax
    (b"\x83\xfe\x02\x74\x7f", "fell off"),                                     # jump past the end
    (b"\x74\x02\xe9\x00\x00\x00\x00", "no compare"),                           # jcc first
    (b"\x48\x83\xfe\x02", "64-bit"),                                           # cmp $2,%rsi
    (b"\x83\xfe\x02\x83\xff\x01\xe9\x00\x10\x00\x00", "two registers"),        # cmp esi, then edi
    (b"\x83\xfe\x02\x70\x01", "unsupported condition"),                        # jo
    (b"\x83\xfe", "past the end"),
])
def test_decode_rejects_what_it_does_not_know(code, needle):
    with pytest.raises(errors.DecodeError, match=needle):
        S.decode_switch(code, START)


def _flags_hold(cc, a, b):
    """SDM Vol. 1 appendix B condition codes after `cmp b, a` (a - b)."""
    res = (a - b) & MASK32
    cf = a < b
    zf = res == 0
    sf = bool(res >> 31)
    of = bool(((a ^ b) & (a ^ res)) >> 31)
    return {0x2: cf, 0x3: not cf, 0x4: zf, 0x5: not zf, 0x6: cf or zf, 0x7: not cf and not zf,
            0xC: sf != of, 0xD: sf == of, 0xE: zf or sf != of, 0xF: not zf and sf == of}[cc]


def _member(intervals, v):
    return any(lo <= v <= hi for lo, hi in intervals)


@given(st.sampled_from([0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0xC, 0xD, 0xE, 0xF]),
       st.integers(0, MASK32), st.one_of(st.integers(0, MASK32), st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, MASK32])))
def test_condition_sets_match_the_flags(cc, b, a):
    assert _member(S.condition_set(cc, ("cmp", b)), a) == _flags_hold(cc, a, b)
    # `test a,a` sets flags like `cmp $0,a` except OF/CF (both 0: same as cmp with 0).
    assert _member(S.condition_set(cc, ("test",)), a) == _flags_hold(cc, a, 0)


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), max_size=6),
       st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), max_size=6))
def test_interval_algebra(xs, ys):
    def norm(pairs):
        vals = set()
        for lo, n in pairs:
            vals.update(range(lo, lo + n + 1))
        out = []
        for v in sorted(vals):
            if out and out[-1][1] == v - 1:
                out[-1] = (out[-1][0], v)
            else:
                out.append((v, v))
        return out, vals
    a, va = norm(xs)
    b, vb = norm(ys)
    inter = S._intersect(a, b)
    assert {v for lo, hi in inter for v in range(lo, hi + 1)} == va & vb
    comp = S._complement(a)
    assert all(not _member(comp, v) for v in va)
    assert all(_member(comp, v) for v in range(0, 1100) if v not in va)
    assert _member(comp, MASK32)


# ---------------------------------------------------------------------------
# Checking a table read from memory

TEXT = (0xFFFFFFFF81000000, 0xFFFFFFFF82000000)
NAMES = {H["read"]: "__x64_sys_read", H["write"]: "__x64_sys_write", H["ni"]: "__x64_sys_ni_syscall",
         H["hook"]: "evil_hook", H["open"] + 0x10: "__x64_sys_open+0x10"}


def describe(addr):
    return NAMES.get(addr)


def in_text(addr):
    return TEXT[0] <= addr < TEXT[1]


def test_check_table_clean():
    good = [H["read"], H["write"], H["ni"]]
    assert S.check_table("64", good, good, describe, in_text) == []


def test_check_table_flags_each_kind():
    good = [H["read"], H["write"], H["ni"], H["read"]]
    module = 0xFFFFFFFFC0001000                       # a module address: not kernel text
    mem = [H["read"], H["hook"], module, H["open"] + 0x10]
    problems = S.check_table("64", mem, good, describe, in_text)
    kinds = sorted((p.nr, p.kind) for p in problems)
    assert kinds == [(1, "table-differs"), (1, "unexpected-symbol"), (2, "outside-text"),
                     (2, "table-differs"), (3, "table-differs"), (3, "unexpected-symbol")]
    p = next(p for p in problems if p.nr == 1 and p.kind == "table-differs")
    assert p.value == H["hook"] and p.expected == H["write"] and "evil_hook" in p.message
    # An ia32 handler in the 64-bit table is unexpected even if the file had it.
    assert [p.kind for p in S.check_table("64", [H["read"]], [H["read"]],
                                          lambda a: "__ia32_sys_read", in_text)] == ["unexpected-symbol"]


def test_dispatch_info():
    sw = S.dispatch_info("64", True, True)
    assert sw["kind"] == "x64_sys_call" and sw["switch"] is True
    assert "only names" in sw["note"] and "changes nothing" in sw["note"]
    old = S.dispatch_info("64", False, True)
    assert old["kind"] == "sys_call_table" and "call *sys_call_table(,%rax,8)" in old["note"]
    ia32 = S.dispatch_info("32", True, False)
    assert ia32["kind"] == "ia32_sys_call" and "no ia32_sys_call_table" in ia32["note"]


# ---------------------------------------------------------------------------
# The file model, on the real Debian vmlinux files (no gdb, no guest)

def _cached_kernels():
    root = os.environ.get("KX_CACHE") or os.path.expanduser("~/.cache/kx")
    out = []
    for meta in sorted(glob.glob(os.path.join(root, "kernels", "*", "kernel.json"))):
        d = os.path.dirname(meta)
        if os.path.exists(os.path.join(d, "vmlinux")):
            with open(meta) as f:
                out.append((json.load(f)["series"], d))
    return out


class ReadelfSymbols:
    """Symbols from binutils' readelf: independent of kx's own loader."""

    def __init__(self, path):
        out = subprocess.run(["readelf", "-sW", path], capture_output=True, text=True, check=True).stdout
        self.by_name, entries = {}, []
        for line in out.splitlines():
            p = line.split()
            if len(p) >= 8 and p[0].endswith(":") and p[3] in ("FUNC", "OBJECT", "NOTYPE") and p[6] != "UND":
                addr, size = int(p[1], 16), int(p[2], 16) if p[2].startswith("0x") else int(p[2])
                if addr:
                    self.by_name.setdefault(p[7], (addr, size))
                    entries.append((addr, size, p[7]))
        entries.sort()
        self.entries, self.addrs = entries, [e[0] for e in entries]

    def lookup(self, name):
        v = self.by_name.get(name)
        return v[0] if v else None

    def describe(self, addr):
        i = bisect.bisect_right(self.addrs, addr) - 1
        while i >= 0:
            value, size, name = self.entries[i]
            if addr - value > 1 << 20:
                return None
            if (size and addr < value + size) or addr == value:
                return name, addr - value
            i -= 1
        return None


class NoSizeSymbols(ReadelfSymbols):
    """Without size(): kx must find table sizes through describe()."""


class SizedSymbols(ReadelfSymbols):
    def size(self, name):
        v = self.by_name.get(name)
        return v[1] if v else None


def syscall_tbl(series, bits):
    """nr -> entry-point symbol without the ABI prefix (None: ni_syscall)."""
    return {nr: entry for nr, (_abi, entry) in kernel_source.syscall_tbl(series, bits).items()}


KERNELS = _cached_kernels()


@pytest.fixture(scope="module", params=KERNELS, ids=[k[0] for k in KERNELS])
def vmlinux(request):
    if not shutil.which("readelf"):
        pytest.skip("binutils' readelf is not installed")
    series, d = request.param
    path = os.path.join(d, "vmlinux")
    image = S.ElfImage(path)
    yield series, image, SizedSymbols(path), d
    image.close()


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
@pytest.mark.parametrize("abi,bits,prefix", [("64", "64", "__x64_"), ("32", "32", "__ia32_")])
def test_file_model_matches_syscall_tbl(vmlinux, abi, bits, prefix):
    series, image, syms, _ = vmlinux
    model = S.FileModel(abi, image, syms)
    tbl = syscall_tbl(series, bits)
    assert model.nr_syscalls == max(tbl) + 1
    entries = model.entries()
    assert len(entries) == model.nr_syscalls
    for e in entries:
        want = tbl.get(e.nr)
        assert e.symbol == (prefix + want if want else prefix + "sys_ni_syscall"), e
        assert e.implemented == (want is not None)
        if want:
            assert e.name == want.split("sys_", 1)[1] and e.compat == want.startswith("compat_")
    if abi == "64":
        assert model.source == "sys_call_table"
        assert model.table_address == syms.lookup("sys_call_table")
        assert model.nr_syscalls == syms.by_name["sys_call_table"][1] // 8


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
def test_switch_agrees_with_table_and_sizes_without_size(vmlinux):
    """x64_sys_call's decoded switch sends every nr where sys_call_table
    says; table sizes found by describe() alone equal readelf's."""
    series, image, syms, d = vmlinux
    model = S.FileModel("64", image, syms)
    assert model.switch is not None                      # both Debian kernels have the switch
    assert model.switch.cases(model.nr_syscalls) == model.handlers
    assert model.switch.nr_syscalls == model.nr_syscalls
    assert model.switch.default == syms.lookup("__x64_sys_ni_syscall")
    plain = NoSizeSymbols.__new__(NoSizeSymbols)
    plain.__dict__.update(syms.__dict__)
    assert S.symbol_size(plain, "sys_call_table", 8 * S.MAX_NR, 8) == syms.by_name["sys_call_table"][1]
    assert S.symbol_size(plain, "x64_sys_call", 1 << 16) == syms.by_name["x64_sys_call"][1]


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
def test_no_ia32_table_and_no_x32(vmlinux):
    series, image, syms, _ = vmlinux
    assert syms.lookup("ia32_sys_call_table") is None
    m = S.FileModel("32", image, syms)
    assert m.table_address is None and "ia32_sys_call switch" in m.source
    with pytest.raises(errors.MissingSymbol, match="x32"):
        S.FileModel("x32", image, syms)


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
def test_ftrace_metadata_from_the_file(vmlinux):
    series, image, syms, _ = vmlinux
    meta = S.parse_metadata(image.read, syms.lookup("__syscall_meta__openat"))
    assert meta["name"] == "sys_openat" and meta["nr"] == -1      # filled in at boot
    # fs/open.c SYSCALL_DEFINE4(openat, ...); __user is expanded (to nothing)
    # before __SC_STR_TDECL stringifies the type, so it is not in the string.
    assert meta["args"] == [("int", "dfd"), ("const char *", "filename"),
                            ("int", "flags"), ("umode_t", "mode")]
    write = S.parse_metadata(image.read, syms.lookup("__syscall_meta__write"))
    assert write["args"] == [("unsigned int", "fd"), ("const char *", "buf"), ("size_t", "count")]
    assert S.parse_metadata(image.read, syms.lookup("__syscall_meta__getpid"))["args"] == []


class FakeSymbols:
    def __init__(self, table):
        self.table = table            # name -> (address, size)

    def lookup(self, name):
        v = self.table.get(name)
        return v[0] if v else None

    def size(self, name):
        v = self.table.get(name)
        return v[1] if v else None

    def describe(self, addr):
        for name, (a, size) in self.table.items():
            if a == addr or a <= addr < a + size:
                return name, addr - a
        return None


def fake_kernel(switch_code, with_table=True):
    mem = FakeMemory()
    syms = {"x64_sys_call": (START, len(switch_code)), "ia32_sys_call": (START, len(switch_code)),
            "__x64_sys_read": (H["read"], 0x40), "__x64_sys_write": (H["write"], 0x40),
            "__x64_sys_ni_syscall": (H["ni"], 0x10), "__ia32_sys_ni_syscall": (H["ni"], 0x10)}
    mem.put(START, switch_code)
    if with_table:
        syms["sys_call_table"] = (0xFFFFFFFF82000000, 24)
        mem.put(0xFFFFFFFF82000000, struct.pack("<3Q", H["read"], H["write"], H["ni"]))
    return mem, FakeSymbols(syms)


def test_file_model_falls_back_to_the_table_when_the_switch_does_not_decode():
    mem, syms = fake_kernel(b"\xff\x24\xf5\x00\x00\x00\x00")          # jmp *table(,%rsi,8)
    m = S.FileModel("64", mem, syms)
    assert m.switch is None and "unexpected instruction" in m.switch_error
    assert [e.symbol for e in m.entries()] == ["__x64_sys_read", "__x64_sys_write", "__x64_sys_ni_syscall"]
    assert [e.name for e in m.entries()] == ["read", "write", None]
    with pytest.raises(errors.NotSupported, match="does not decode"):
        S.FileModel("32", mem, syms)                                   # no ia32 table to fall back on


def test_file_model_aliases_prefer_the_abi_prefix():
    """__x64_sys_ni_syscall and __ia32_sys_ni_syscall share an address
    (6.1/6.12): each ABI names it with its own prefix."""
    code = small_switch()
    mem, syms = fake_kernel(code)
    m64 = S.FileModel("64", mem, syms)
    assert m64.entries()[2].symbol == "__x64_sys_ni_syscall"
    assert m64.entries(slide=0x1000)[0].handler == H["read"] + 0x1000
    syms.table.pop("sys_call_table")
    m32 = S.FileModel("32", mem, syms)
    assert m32.source.startswith("ia32_sys_call switch")
    assert m32.nr_syscalls == 6
    assert m32.entries()[3].symbol == "__ia32_sys_ni_syscall"
