"""Fixtures shared by the syscall-model, switch-decoder and vmlinux-file
tests: hand-assembled dispatch switches (x86-64) shaped like gcc's
x64_sys_call, sparse fake memory, the cached Debian kernels."""
import glob
import json
import os
import struct

from gdbext import errors

MASK32 = 0xFFFFFFFF
START = 0xFFFFFFFF81003320
H = {name: 0xFFFFFFFF81100000 + 0x100 * i for i, name in
     enumerate(["fentry", "read", "write", "open", "ni", "exit", "hook", "close"])}
JE, JNE, JBE, JA, JB, JAE, JL, JG = 0x4, 0x5, 0x6, 0x7, 0x2, 0x3, 0xC, 0xF


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


def redirect(code, old, new):
    """`code` with its first `jmp old` retargeted to `new`."""
    bad = bytearray(code)
    for off in range(len(code) - 5):
        if code[off] == 0xE9 and START + off + 5 + struct.unpack_from("<i", code, off + 1)[0] == old:
            bad[off + 1:off + 5] = struct.pack("<i", new - (START + off + 5))
            return bytes(bad)
    raise AssertionError(f"no jmp to {old:#x} in the fixture")


class FakeMemory:
    """Sparse link-time memory: read(addr, n) like VmlinuxImage.read (short at
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


def cached_kernels():
    """(series, directory) of each x86-64 kernel under test
    (KX_TEST_KERNELS) that the lab has fetched; ./scripts/test fetches them
    all first."""
    from kxlab.kernels import arch_of
    from tests.conftest import KERNELS as under_test
    root = os.environ.get("KX_CACHE") or os.path.expanduser("~/.cache/kx")
    out = []
    for meta in sorted(glob.glob(os.path.join(root, "kernels", "*", "kernel.json"))):
        d = os.path.dirname(meta)
        if os.path.exists(os.path.join(d, "vmlinux")):
            with open(meta) as f:
                info = json.load(f)
            if info["series"] in under_test and arch_of(info) == "x86_64":
                series = info["series"]
                out.append((series, d))
    return out
