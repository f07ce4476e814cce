"""The syscall model's pure parts: handler names, ftrace metadata from byte
fixtures, the memory checks on hand-assembled switches (the decoder itself:
test_decoders_x86_switch.py); then the whole file model against each cached
Debian vmlinux, with binutils' readelf for symbols and the kernel's own
syscall_*.tbl as ground truth (skipped when the kernels or sources are not
on disk)."""
import bisect
import os
import shutil
import struct
import subprocess

import pytest

from gdbext import errors
from gdbext.decoders.x86_switch import decode_switch
from gdbext.kernel import syscall_check as C
from gdbext.kernel import syscall_signatures as G
from gdbext.kernel import syscall_tables as T
from gdbext.kernel import vmlinux as V
from tests import kernel_source
from tests.unit.syscall_fixtures import H, START, FakeMemory, cached_kernels, redirect, small_switch


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
    assert T.handler_name(symbol) == expected


def test_expected_symbol_per_abi():
    assert T.is_expected_symbol("__x64_sys_read", "64")
    assert not T.is_expected_symbol("__ia32_sys_read", "64")
    assert T.is_expected_symbol("__ia32_compat_sys_open", "32")
    assert T.is_expected_symbol("__ia32_sys_write", "32")
    assert not T.is_expected_symbol("__x64_sys_write", "32")
    assert not T.is_expected_symbol("evil_hook", "64")
    assert T.is_expected_symbol("__x32_compat_sys_ioctl", "x32")


def test_resolve_abi():
    assert [T.resolve_abi(a).name for a in ("64", "x86_64", "32", "ia32", "i386", "x32", 64, 32, None)] == \
        ["64", "64", "32", "32", "32", "x32", "64", "32", "64"]
    abi = T.resolve_abi("ia32")
    assert T.resolve_abi(abi) is abi
    with pytest.raises(errors.BadArgument, match="--abi must be 64, 32, x32"):
        T.resolve_abi("arm64")


# ---------------------------------------------------------------------------
# ftrace metadata (struct syscall_metadata, include/trace/syscall.h)

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
    meta = G.parse_metadata(m.read, 0x1000)
    assert meta == {"name": "sys_openat", "nr": -1,
                    "args": [("int", "dfd"), ("const char __user *", "filename"),
                             ("int", "flags"), ("umode_t", "mode")]}


def test_parse_metadata_as_7_2_fills_it_at_boot():
    """7.2's struct syscall_metadata: nb_args:7, user_arg_is_str:1,
    user_arg_size, user_mask in the int 6.x's nb_args was; the kernel fills
    the three at boot (bytes seen in a 7.2 guest's __syscall_meta__openat:
    04 ff 02 00)."""
    m = metadata_fixture()
    m.put(0x1000, struct.pack("<QiBbhQQ", 0x2000, 257, 4 | 0x80, -1, 2, 0x3000, 0x3100) + bytes(32))
    meta = G.parse_metadata(m.read, 0x1000)
    assert meta["nr"] == 257 and [a for _t, a in meta["args"]] == ["dfd", "filename", "flags", "mode"]


def test_parse_metadata_no_args():
    meta = G.parse_metadata(metadata_fixture(nb=0, name="sys_getpid").read, 0x1000)
    assert meta["name"] == "sys_getpid" and meta["args"] == []


def test_parse_metadata_rejects_garbage():
    m = metadata_fixture()
    m.put(0x1000, struct.pack("<QiiQQ", 0x2000, -1, 9, 0x3000, 0x3100))
    with pytest.raises(errors.DecodeError, match="nb_args 9"):
        G.parse_metadata(m.read, 0x1000)
    m = FakeMemory()
    m.put(0x1000, struct.pack("<QiiQQ", 0x2000, -1, 0, 0, 0))
    m.put(0x2000, b"x" * 300)                      # no NUL
    with pytest.raises(errors.DecodeError, match="no NUL"):
        G.parse_metadata(m.read, 0x1000)


def test_signature_format():
    sig = G.Signature("openat", [("int", "dfd"), ("const char __user *", "filename")], "ftrace")
    assert sig.format() == "openat(int dfd, const char __user *filename)"
    assert G.Signature("getpid", [], "ftrace").format() == "getpid(void)"
    assert sig.as_dict()["args"][1] == {"type": "const char __user *", "name": "filename"}


def test_order_args():
    rev = [("umode_t", "mode"), ("int", "flags"), ("const char *", "filename"), ("int", "dfd")]
    want = list(reversed(rev))
    assert G.order_args(rev, None, inlined=True) == want
    assert G.order_args(want, None, inlined=False) == want
    # The native metadata's order wins whenever it names the same parameters.
    assert G.order_args(rev, ["dfd", "filename", "flags", "mode"], inlined=False) == want
    assert G.order_args(rev, ["other"], inlined=True) == want


# ---------------------------------------------------------------------------
# Checking a switch read from memory

def test_check_hooked_switch_entry():
    """An inline hook (jmp at the first byte) sends every nr elsewhere."""
    code = bytearray(small_switch())
    code[:5] = b"\xe9" + struct.pack("<i", H["hook"] - (START + 5))
    sw = decode_switch(bytes(code), START)
    good = decode_switch(small_switch(), START)
    problems = C.check_switch("64", sw, good, 0, 6, lambda a: None)
    assert [p.nr for p in problems] == [0, 1, 2, 3, 4, 5, None]
    assert {p.kind for p in problems} == {"switch-differs"}
    assert "the default case" in problems[-1].message
    assert C.check_switch("64", good, good, 0, 6, lambda a: None) == []


def test_check_one_redirected_case():
    good = decode_switch(small_switch(), START)
    sw = decode_switch(redirect(small_switch(), H["open"], H["hook"]), START)
    problems = C.check_switch("64", sw, good, 0, 6, lambda a: "hook" if a == H["hook"] else None)
    assert [(p.nr, p.value, p.expected) for p in problems] == [(2, H["hook"], H["open"])]
    assert "hook" in problems[0].message and "x64_sys_call()" in problems[0].message


def test_check_switch_at_a_slide():
    """The file's map is at link addresses, memory's at run addresses."""
    slide = 0x1e00000
    good = decode_switch(small_switch(), START)
    live = decode_switch(small_switch(), START + slide)
    assert C.check_switch("64", live, good, slide, 6, lambda a: None) == []
    assert len(C.check_switch("64", live, good, 0, 6, lambda a: None)) == 7


def test_check_switch_undecodable():
    good = decode_switch(small_switch(), START)
    (p,) = C.check_switch("32", None, good, 0, 6, lambda a: None, error="unexpected instruction")
    assert p.kind == "switch-undecodable" and p.nr is None and "ia32_sys_call" in p.message


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
    assert C.check_table("64", good, good, describe, in_text) == []


def test_check_table_flags_each_kind():
    good = [H["read"], H["write"], H["ni"], H["read"]]
    module = 0xFFFFFFFFC0001000                       # a module address: not kernel text
    mem = [H["read"], H["hook"], module, H["open"] + 0x10]
    problems = C.check_table("64", mem, good, describe, in_text)
    kinds = sorted((p.nr, p.kind) for p in problems)
    assert kinds == [(1, "table-differs"), (1, "unexpected-symbol"), (2, "outside-text"),
                     (2, "table-differs"), (3, "table-differs"), (3, "unexpected-symbol")]
    p = next(p for p in problems if p.nr == 1 and p.kind == "table-differs")
    assert p.value == H["hook"] and p.expected == H["write"] and "evil_hook" in p.message
    # An ia32 handler in the 64-bit table is unexpected even if the file had it.
    assert [p.kind for p in C.check_table("64", [H["read"]], [H["read"]],
                                          lambda a: "__ia32_sys_read", in_text)] == ["unexpected-symbol"]


def test_check_table_accepts_any_alias():
    """5.10: an argument-less syscall is one function with three names
    (__do_sys_getpid, __ia32_sys_getpid, __x64_sys_getpid); describe()
    picks one, and the ia32 table's entry is fine if any name is ia32's."""
    names = {H["read"]: ["__do_sys_read", "__ia32_sys_read", "__x64_sys_read"], H["hook"]: ["evil_hook"]}
    first_x64 = lambda a: names[a][-1] if a in names else None       # noqa: E731
    assert C.check_table("32", [H["read"]], [H["read"]], first_x64, in_text,
                         lambda a: names.get(a, [])) == []
    assert [p.kind for p in C.check_table("32", [H["read"]], [H["read"]], first_x64, in_text)] == \
        ["unexpected-symbol"]                       # without the aliases: describe's name only
    assert [p.kind for p in C.check_table("32", [H["hook"]], [H["hook"]], lambda a: "evil_hook", in_text,
                                          lambda a: names.get(a, []))] == ["unexpected-symbol"]


def test_dispatch_info():
    sw = T.dispatch_info("64", True, True)
    assert sw["kind"] == "x64_sys_call" and sw["switch"] is True
    assert "only names" in sw["note"] and "changes nothing" in sw["note"]
    assert sw["note"].startswith("do_syscall_64() calls x64_sys_call(regs, nr)")
    old = T.dispatch_info("64", False, True)
    assert old["kind"] == "sys_call_table" and old["function"] == "sys_call_table"
    assert "calls sys_call_table[nr](regs), an indirect call" in old["note"]
    ia32 = T.dispatch_info("32", True, False)
    assert ia32["kind"] == "ia32_sys_call" and "no ia32_sys_call_table" in ia32["note"]


# ---------------------------------------------------------------------------
# The file model, on the real Debian vmlinux files (no gdb, no guest)

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


KERNELS = cached_kernels()


@pytest.fixture(scope="module", params=KERNELS, ids=[k[0] for k in KERNELS])
def vmlinux(request):
    if not shutil.which("readelf"):
        pytest.skip("binutils' readelf is not installed")
    series, d = request.param
    path = os.path.join(d, "vmlinux")
    yield series, V.image(path), SizedSymbols(path), d


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
@pytest.mark.parametrize("abi,bits,prefix", [("64", "64", "__x64_"), ("32", "32", "__ia32_")])
def test_file_model_matches_syscall_tbl(vmlinux, abi, bits, prefix):
    series, image, syms, _ = vmlinux
    model = T.FileModel(abi, image, syms)
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
    model = T.FileModel("64", image, syms)
    plain = NoSizeSymbols.__new__(NoSizeSymbols)
    plain.__dict__.update(syms.__dict__)
    assert T.symbol_size(plain, "sys_call_table", 8 * T.MAX_NR, 8) == syms.by_name["sys_call_table"][1]
    if syms.lookup("x64_sys_call") is None:
        # Before 6.9 / 6.1.85 (5.10): do_syscall_64 calls sys_call_table[nr](regs).
        assert model.switch is None and model.switch_address is None
        assert T.dispatch_info("64", False, True)["kind"] == "sys_call_table"
        return
    assert model.switch is not None
    assert model.switch.cases(model.nr_syscalls) == model.handlers
    assert model.switch.nr_syscalls == model.nr_syscalls
    assert model.switch.default == syms.lookup("__x64_sys_ni_syscall")
    assert T.symbol_size(plain, "x64_sys_call", 1 << 16) == syms.by_name["x64_sys_call"][1]


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
def test_ia32_map_and_no_x32(vmlinux):
    """The ia32 map is ia32_sys_call_table where the kernel has one (5.10),
    else the ia32_sys_call() switch (6.1.85+, 6.9+): never both."""
    series, image, syms, _ = vmlinux
    m = T.FileModel("32", image, syms)
    table = syms.lookup("ia32_sys_call_table")
    assert (table is None) == (syms.lookup("ia32_sys_call") is not None)
    if table is None:
        assert m.table_address is None and "ia32_sys_call switch" in m.source
    else:
        assert m.table_address == table and m.source == "ia32_sys_call_table" and m.switch is None
        assert m.nr_syscalls == syms.by_name["ia32_sys_call_table"][1] // 8
    with pytest.raises(errors.MissingSymbol, match="x32"):
        T.FileModel("x32", image, syms)


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
def test_ftrace_metadata_from_the_file(vmlinux):
    series, image, syms, _ = vmlinux
    meta = G.parse_metadata(image.read, syms.lookup("__syscall_meta__openat"))
    assert meta["name"] == "sys_openat" and meta["nr"] == -1      # filled in at boot
    # fs/open.c SYSCALL_DEFINE4(openat, ...); __user is expanded (to nothing)
    # before __SC_STR_TDECL stringifies the type, so it is not in the string.
    assert meta["args"] == [("int", "dfd"), ("const char *", "filename"),
                            ("int", "flags"), ("umode_t", "mode")]
    write = G.parse_metadata(image.read, syms.lookup("__syscall_meta__write"))
    assert write["args"] == [("unsigned int", "fd"), ("const char *", "buf"), ("size_t", "count")]
    assert G.parse_metadata(image.read, syms.lookup("__syscall_meta__getpid"))["args"] == []


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
    m = T.FileModel("64", mem, syms)
    assert m.switch is None and "unexpected instruction" in m.switch_error
    assert [e.symbol for e in m.entries()] == ["__x64_sys_read", "__x64_sys_write", "__x64_sys_ni_syscall"]
    assert [e.name for e in m.entries()] == ["read", "write", None]
    with pytest.raises(errors.NotSupported, match="does not decode"):
        T.FileModel("32", mem, syms)                                   # no ia32 table to fall back on


def test_file_model_aliases_prefer_the_abi_prefix():
    """__x64_sys_ni_syscall and __ia32_sys_ni_syscall share an address
    (6.1/6.12): each ABI names it with its own prefix."""
    code = small_switch()
    mem, syms = fake_kernel(code)
    m64 = T.FileModel("64", mem, syms)
    assert m64.entries()[2].symbol == "__x64_sys_ni_syscall"
    assert m64.entries(slide=0x1000)[0].handler == H["read"] + 0x1000
    syms.table.pop("sys_call_table")
    m32 = T.FileModel("32", mem, syms)
    assert m32.source.startswith("ia32_sys_call switch")
    assert m32.nr_syscalls == 6
    assert m32.entries()[3].symbol == "__ia32_sys_ni_syscall"


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
def test_declared_parameters_from_the_file(vmlinux):
    """The abstract instance of an inlined compat body lists its parameters
    as COMPAT_SYSCALL_DEFINE3(fcntl64, fd, cmd, arg) declares them, whatever
    order the compiler gave the inlined copy (gcc 12 reversed, gcc 16 not)."""
    from gdbext.kernel import vmlinux_dwarf
    _series, image, _syms, _d = vmlinux
    pc = next(a for a, _s, n in image.symbols() if n == "__ia32_compat_sys_fcntl64")
    assert vmlinux_dwarf.declared_parameters(image.path, "__do_compat_sys_fcntl64", pc) == ["fd", "cmd", "arg"]
    assert vmlinux_dwarf.declared_parameters(image.path, "no_such_function", pc) is None
