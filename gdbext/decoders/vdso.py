"""The vDSO image: an ELF shared object the kernel maps into every process.

Pure: bytes in, a VdsoImage out (pyelftools parses the ELF).  Anything that
is not a well-formed vDSO raises DecodeError and nothing else.

What the x86 images contain (arch/x86/entry/vdso/, 6.1 and 6.12):
- vdso.lds.S / vdso32/vdso32.lds.S: linked at 0, one PT_LOAD, dynamic
  symbols with versions (LINUX_2.6; the 32-bit image also has LINUX_2.5);
- vdso-note.S: an ELF note "Linux" type 0 holding LINUX_VERSION_CODE, the
  BUILD_SALT note ("Linux" type 0x100, Debian puts the kernel release in
  it), and ld's --build-id note (NT_GNU_BUILD_ID);
- vdso32/system_call.S: __kernel_vsyscall is `push ecx; push edx; push ebp`,
  then an ALTERNATIVE_2 slot that init_vdso_image() patches at boot to
  `mov %esp,%ebp; sysenter` (X86_FEATURE_SYSENTER32) or `mov %ecx,%ebp;
  syscall` (X86_FEATURE_SYSCALL32), else leaves NOPs, then `int $0x80`.
- vsyscall/vsyscall_emu_64.S: the legacy vsyscall page holds three stubs
  `mov $NR,%rax; syscall; ret` at +0, +0x400, +0x800.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import List, Optional

from gdbext.decoders import elfnote
from gdbext.decoders.bits import Record
from gdbext.errors import DecodeError

MAX_IMAGE = 1 << 20          # the x86 images are 2 pages; anything huge is not a vDSO
LINUX_NOTE_VERSION = 0       # vdso-note.S: ELFNOTE_START(Linux, 0, "a")
LINUX_NOTE_BUILD_SALT = 0x100  # include/linux/build-salt.h (CONFIG_BUILD_SALT string)

# Legacy vsyscall entry points (arch/x86/include/uapi/asm/vsyscall.h,
# VSYSCALL_ADDR) and what each stub calls (vsyscall_emu_64.S).
VSYSCALL_ADDR = 0xFFFFFFFFFF600000
VSYSCALL_ENTRIES = ((0x000, "gettimeofday"), (0x400, "time"), (0x800, "getcpu"))

# __kernel_vsyscall's patched slot (vdso32/system_call.S).
_PUSHES = b"\x51\x52\x55"                     # push %ecx; push %edx; push %ebp
_SYSENTER_SEQ = b"\x89\xe5\x0f\x34"           # mov %esp,%ebp; sysenter
_SYSCALL_SEQ = b"\x89\xcd\x0f\x05"            # mov %ecx,%ebp; syscall
_INT80 = b"\xcd\x80"
# NOP forms the alternatives code pads with (arch/x86/include/asm/nops.h,
# BYTES_NOP1..4 for x86-64).
_NOPS = (b"\x0f\x1f\x40\x00", b"\x0f\x1f\x00", b"\x66\x90", b"\x90")


@dataclass
class VdsoSymbol(Record):
    name: str
    value: int              # st_value: the offset in the image (linked at 0)
    size: int
    type: str               # "func", "object", ...
    bind: str               # "global", "weak", "local"
    version: Optional[str]  # from .gnu.version / .gnu.version_d
    hidden: bool            # versym bit 15: not the default version


@dataclass
class VdsoImage(Record):
    bits: int               # 64 or 32
    machine: str            # EM_X86_64 / EM_386
    size: int               # bytes handed in
    load_address: int       # p_vaddr of the first PT_LOAD (0 for x86's vDSOs)
    soname: Optional[str]
    build_id: Optional[str]
    linux_version: Optional[int]   # LINUX_VERSION_CODE from the "Linux" note
    build_salt: Optional[str]      # the BUILD_SALT note's string, if any
    versions: List[str]
    symbols: List[VdsoSymbol] = field(default_factory=list)

    @property
    def linux_version_text(self) -> Optional[str]:
        v = self.linux_version
        if v is None:
            return None
        return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"

    def symbol(self, name: str) -> Optional[VdsoSymbol]:
        return next((s for s in self.symbols if s.name == name), None)

    def offset_of(self, name: str) -> Optional[int]:
        """Offset of `name` from the mapped base (st_value - load address)."""
        s = self.symbol(name)
        return None if s is None else s.value - self.load_address

    def to_dict(self):
        d = super().to_dict()
        d["linux_version_text"] = self.linux_version_text
        return d


def _check_header(data: bytes) -> int:
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise DecodeError("vDSO: not an ELF image (bad magic or too short)")
    if data[4] not in (1, 2) or data[5] != 1:
        raise DecodeError("vDSO: not a little-endian ELF32/ELF64 image")
    bits = 32 if data[4] == 1 else 64
    e_type = struct.unpack_from("<H", data, 16)[0]
    if e_type != 3:  # ET_DYN
        raise DecodeError(f"vDSO: ELF type {e_type} is not ET_DYN (a shared object)")
    return bits


def parse_vdso(raw) -> VdsoImage:
    """Parse a vDSO image (the bytes of the [vdso] mapping)."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DecodeError(f"vDSO: expected bytes, not {type(raw).__name__}")
    data = bytes(raw)
    if len(data) > MAX_IMAGE:
        raise DecodeError(f"vDSO: {len(data)} bytes is far larger than any vDSO")
    bits = _check_header(data)
    try:
        return _parse(data, bits)
    except DecodeError:
        raise
    except Exception as exc:  # pyelftools raises ELFError, struct/construct errors, IndexError ...
        raise DecodeError(f"vDSO: malformed ELF ({type(exc).__name__}: {exc})") from None


def _notes(elf, data: bytes):
    """(build id hex, Linux version note, build salt) from the PT_NOTEs."""
    build_id = linux_version = build_salt = None
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_NOTE":
            continue
        start, size = seg["p_offset"], seg["p_filesz"]
        if start + size > len(data):
            raise DecodeError("vDSO: PT_NOTE lies outside the image")
        for _, name, ntype, desc in elfnote.iter_notes(data[start:start + size]):
            if name == "GNU" and ntype == elfnote.NT_GNU_BUILD_ID:
                build_id = desc.hex()
            elif name == "Linux" and ntype == LINUX_NOTE_VERSION and len(desc) >= 4:
                linux_version = struct.unpack_from("<I", desc)[0]
            elif name == "Linux" and ntype == LINUX_NOTE_BUILD_SALT:
                build_salt = desc.split(b"\0", 1)[0].decode("ascii", "replace") or None
    return build_id, linux_version, build_salt


def _version_definitions(elf, in_bounds):
    """({version index: name}, [version names]) from .gnu.version_d."""
    verdef = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_GNU_verdef"), None)
    version_names, versions = {}, []
    if verdef is None:
        return version_names, versions
    if not in_bounds(verdef) or verdef["sh_info"] > 256:
        raise DecodeError("vDSO: implausible .gnu.version_d")
    for vd, auxiter in verdef.iter_versions():
        aux = next(iter(auxiter), None)
        if aux is None:
            continue
        version_names[vd["vd_ndx"]] = aux.name
        if not vd["vd_flags"] & 1:  # VER_FLG_BASE names the file, not a version
            versions.append(aux.name)
    return version_names, versions


def _symbols(elf, in_bounds, version_names) -> List[VdsoSymbol]:
    dynsym = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_DYNSYM"), None)
    if dynsym is None:
        raise DecodeError("vDSO: no .dynsym section")
    if not in_bounds(dynsym) or not in_bounds(elf.get_section(dynsym["sh_link"])):
        raise DecodeError("vDSO: .dynsym or its string table lies outside the image")
    if not dynsym["sh_entsize"] or dynsym["sh_size"] // dynsym["sh_entsize"] > 4096:
        raise DecodeError("vDSO: implausible .dynsym size")
    versym = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_GNU_versym"), None)
    if versym is not None and not in_bounds(versym):
        raise DecodeError("vDSO: .gnu.version lies outside the image")
    symbols = []
    for i, sym in enumerate(dynsym.iter_symbols()):
        if i == 0 or not sym.name:
            continue
        if sym.name in version_names.values() and sym["st_shndx"] == "SHN_ABS":
            continue  # the linker's symbol naming a version definition, not code
        ver, hidden = None, False
        if versym is not None and i < versym.num_symbols():
            ndx = versym.get_symbol(i)["ndx"]
            if isinstance(ndx, int):
                hidden = bool(ndx & 0x8000)
                ver = version_names.get(ndx & 0x7FFF)
        info = sym["st_info"]
        symbols.append(VdsoSymbol(
            name=sym.name, value=sym["st_value"], size=sym["st_size"],
            type=str(info["type"]).replace("STT_", "").lower(),
            bind=str(info["bind"]).replace("STB_", "").lower(),
            version=ver, hidden=hidden))
    return symbols


def _soname(elf, in_bounds) -> Optional[str]:
    dynamic = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_DYNAMIC"), None)
    if dynamic is None or not in_bounds(dynamic):
        return None
    for tag in dynamic.iter_tags():
        if tag.entry.d_tag == "DT_SONAME":
            return tag.soname
        if tag.entry.d_tag == "DT_NULL":
            break
    return None


def _parse(data: bytes, bits: int) -> VdsoImage:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    if elf.num_sections() > 256 or elf.num_segments() > 64:
        raise DecodeError("vDSO: implausible section/segment count")
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise DecodeError("vDSO: no PT_LOAD segment")

    def in_bounds(sec):
        return sec["sh_type"] == "SHT_NOBITS" or sec["sh_offset"] + sec["sh_size"] <= len(data)
    build_id, linux_version, build_salt = _notes(elf, data)
    version_names, versions = _version_definitions(elf, in_bounds)
    symbols = _symbols(elf, in_bounds, version_names)
    return VdsoImage(bits=bits, machine=str(elf["e_machine"]), size=len(data),
                     load_address=min(s["p_vaddr"] for s in loads), soname=_soname(elf, in_bounds),
                     build_id=build_id, linux_version=linux_version, build_salt=build_salt,
                     versions=versions, symbols=symbols)


@dataclass
class Trampoline(Record):
    kind: str       # "sysenter", "syscall", "int 0x80" or "unknown"
    detail: str


def decode_kernel_vsyscall(code) -> Trampoline:
    """Which way __kernel_vsyscall enters the kernel, from its bytes as they
    are in memory (after init_vdso_image() applied the alternatives)."""
    if not isinstance(code, (bytes, bytearray, memoryview)):
        raise DecodeError(f"__kernel_vsyscall: expected bytes, not {type(code).__name__}")
    code = bytes(code)
    # 7.2's vdso32/system_call.S starts with ALTERNATIVE "int $0x80; ret",
    # "", X86_FEATURE_SYSFAST32 (the bit 6.12 calls SYSENTER32): a 3-byte
    # NOP once patched, `int $0x80; ret` without the feature (and in the file).
    if code.startswith(_INT80 + b"\xc3"):
        return Trampoline("int 0x80", "int $0x80; ret first (X86_FEATURE_SYSFAST32 clear, or not patched)")
    lead = next((n for n in _NOPS if code.startswith(n + _PUSHES)), b"")
    code = code[len(lead):]
    if not code.startswith(_PUSHES):
        return Trampoline("unknown", "does not start with push %ecx; push %edx; push %ebp")
    rest = code[len(_PUSHES):]
    if rest.startswith(_SYSENTER_SEQ):
        return Trampoline("sysenter", "mov %esp,%ebp; sysenter (X86_FEATURE_SYSENTER32, 7.2: SYSFAST32), "
                                      "int $0x80 after it")
    if rest.startswith(_SYSCALL_SEQ):
        return Trampoline("syscall", "mov %ecx,%ebp; syscall (X86_FEATURE_SYSCALL32), int $0x80 after it")
    pos = 0
    while pos < len(rest):
        nop = next((n for n in _NOPS if rest.startswith(n, pos)), None)
        if nop is None:
            break
        pos += len(nop)
    if rest.startswith(_INT80, pos):
        return Trampoline("int 0x80", f"{pos} NOP bytes (alternative not applied), then int $0x80")
    return Trampoline("unknown", f"unrecognised bytes after the pushes: {rest[:8].hex()}")


def decode_vsyscall_stub(code) -> Optional[int]:
    """The syscall number of a `mov $NR,%rax; syscall; ret` stub, or None."""
    if not isinstance(code, (bytes, bytearray, memoryview)):
        raise DecodeError(f"vsyscall stub: expected bytes, not {type(code).__name__}")
    code = bytes(code)
    # 48 c7 c0 imm32 (mov $imm32,%rax), 0f 05 (syscall), c3 (ret)
    if len(code) >= 10 and code[:3] == b"\x48\xc7\xc0" and code[7:10] == b"\x0f\x05\xc3":
        return struct.unpack_from("<i", code, 3)[0]
    return None
