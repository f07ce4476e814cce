"""What `kx vdso` shows that only x86-64 has (Arch.vdso_report, vdso_text):
the compat __kernel_vsyscall trampoline and the legacy vsyscall page.

- vdso32/system_call.S: __kernel_vsyscall's ALTERNATIVE_2 slot enters the
  kernel by sysenter, syscall or int $0x80, as the CPU features decide at
  boot (init_vdso_image() patches it; the later alternative wins).
- vsyscall_mode (vsyscall/vsyscall_64.c): enum { EMULATE, XONLY, NONE },
  from CONFIG_LEGACY_VSYSCALL_* or `vsyscall=`; Debian's 6.1 and 6.12 cloud
  configs set LEGACY_VSYSCALL_NONE.
"""
from typing import Optional

from gdbext import errors
from gdbext.arch.x86_64 import cpu_setup
from gdbext.decoders import vdso as vdec
from gdbext.kernel import symbols, syscalls
from gdbext.render import Text
from gdbext import machine

# enum order in arch/x86/entry/vsyscall/vsyscall_64.c (6.1, 6.12); the
# DWARF enumerators are preferred when gdb can see them.
VSYSCALL_MODES = ("emulate", "xonly", "none")
# MM_CONTEXT_HAS_VSYSCALL: BIT(1) in 6.1, bit number 1 for test_bit() in
# 6.12 (arch/x86/include/asm/mmu.h): the same mask.  5.10 has no
# mm->context.flags: get_gate_vma() tests mm->context.ia32_compat instead.
MM_CONTEXT_HAS_VSYSCALL = 1 << 1
# X86_FEATURE_SYSCALL32 = 3*32+14, X86_FEATURE_SYSENTER32 = 3*32+15
# (asm/cpufeatures.h, 6.1 and 6.12; 7.2 calls bit 15 SYSFAST32 and sets it on
# every 64-bit CPU, cpu/common.c, where 6.12 set SYSENTER32 on Intel only).
_CAP_WORD, _SYSCALL32_BIT, _SYSENTER32_BIT = 3, 14, 15


def report(v, cpu: int) -> dict:
    """{"kernel_vsyscall": ..., "vsyscall": ...} for a task's vDSO
    (kernel/vdso.TaskVdso); appends its warnings to v.warnings."""
    from gdbext.kernel import vdso as kvdso
    tramp = trampoline(v, cpu) if v.kernel_image.abi == "32" else None
    vs = vsyscall(mm_has_vsyscall(v.mm_fields), kvdso.task_page_table(v.mm_fields["pgd"], cpu), cpu)
    if vs["mode"] == "emulate" and not all(e["nr"] for e in vs["entries"]):
        v.warnings.append("vsyscall_mode is emulate but the page does not hold the three stubs")
    if vs["mode"] in ("xonly", "none") and any(e["mapped"] for e in vs["entries"]):
        v.warnings.append(f"vsyscall_mode is {vs['mode']} but 0xffffffffff600000 is mapped for user")
    return {"kernel_vsyscall": tramp, "vsyscall": vs}


def mm_has_vsyscall(mm: dict) -> Optional[bool]:
    """Whether get_gate_vma() (vsyscall/vsyscall_64.c, under CONFIG_COMPAT)
    lets this mm have the gate: MM_CONTEXT_HAS_VSYSCALL in context.flags
    (6.1+), else a zero context.ia32_compat (5.10: TIF_IA32 / TIF_X32 for
    compat mms); None when the mm has neither."""
    if mm.get("ctx_flags") is not None:
        return bool(mm["ctx_flags"] & MM_CONTEXT_HAS_VSYSCALL)
    if mm.get("ia32_compat") is not None:
        return mm["ia32_compat"] == 0
    return None


def expected_entry(cpu: int) -> Optional[str]:
    """The instruction ALTERNATIVE_2 picks for __kernel_vsyscall on this
    CPU's features, or None when they cannot be read."""
    caps = cpu_setup.boot_cpu_capabilities(cpu)
    if caps is None:
        return None
    word = caps[_CAP_WORD] if len(caps) > _CAP_WORD else 0
    return "syscall" if word >> _SYSCALL32_BIT & 1 else "sysenter" if word >> _SYSENTER32_BIT & 1 else "int 0x80"


def trampoline(v, cpu: int) -> Optional[dict]:
    """How __kernel_vsyscall enters the kernel: decoded from its bytes, and
    what the CPU features say ALTERNATIVE_2 should have picked (the later
    alternative wins: SYSCALL32 over SYSENTER32; vdso32/system_call.S)."""
    off = v.image.offset_of("__kernel_vsyscall")
    if off is None or off < 0 or off >= len(v.bytes_):
        return None
    decoded = vdec.decode_kernel_vsyscall(v.bytes_[off:off + 32])
    landing = v.kernel_image.fields.get("sym_int80_landing_pad")
    return {"address": v.base + off, "kind": decoded.kind, "detail": decoded.detail,
            "expected_from_cpu_features": expected_entry(cpu),
            "int80_landing_pad": v.base + landing if landing else None}


# ---------------------------------------------------------------------------
# vsyscall

def vsyscall_mode(cpu: int) -> Optional[str]:
    """The kernel's vsyscall_mode (a static variable; its enumerator names
    come from the DWARF when gdb finds them, else the source order)."""
    import gdb
    addr = symbols.lookup("vsyscall_mode")
    if addr is None:
        return None
    value = int.from_bytes(machine.read_kernel(addr, 4, cpu), "little")
    names = None
    try:
        sym = gdb.lookup_static_symbol("vsyscall_mode")
        if sym is not None:
            t = sym.type.strip_typedefs()
            if t.code == gdb.TYPE_CODE_ENUM:
                names = {f.enumval: f.name.lower() for f in t.fields()}
    except (gdb.error, AttributeError):
        names = None
    if names is None:
        names = dict(enumerate(VSYSCALL_MODES))
    return names.get(value, f"unknown ({value})")


def _syscall_name(nr: Optional[int]) -> Optional[str]:
    if nr is None:
        return None
    try:
        return syscalls.name(nr, "64")
    except errors.KxError:
        return None


_BEHAVIOUR = {
    "emulate": "the page is mapped readable; executing it traps and the kernel emulates the call",
    "xonly": "no PTE: an instruction fetch faults and the kernel emulates the call; reads fault",
    "none": "not mapped: a call there is a #PF and SIGSEGV",
}


def vsyscall(has_flag: Optional[bool], root: Optional[int], cpu: int) -> dict:
    """The vsyscall page as the task with page-table root `root` sees it;
    has_flag: mm_has_vsyscall()."""
    mode = vsyscall_mode(cpu)
    # get_gate_vma() (vsyscall_64.c): no gate for mode NONE, nor (with
    # CONFIG_COMPAT) for a compat mm (32-bit tasks).
    gate = mode is not None and mode != "none" and has_flag is not False
    entries = []
    for off, call in vdec.VSYSCALL_ENTRIES:
        addr = vdec.VSYSCALL_ADDR + off
        mapped, nr, code = False, None, None
        if root is not None:
            try:
                tr = machine.translate(addr, cpu, root)
                mapped = tr.user
                code = machine.read_phys(tr.phys, 16)
                nr = vdec.decode_vsyscall_stub(code)
            except (errors.DecodeError, errors.MemoryUnreadable):
                pass
        entries.append({"address": addr, "call": call, "mapped": mapped,
                        "nr": nr, "name": _syscall_name(nr),
                        "bytes": code[:10].hex() if code else None})
    return {"mode": mode, "address": vdec.VSYSCALL_ADDR, "gate_vma": gate,
            "mm_has_vsyscall": has_flag, "behaviour": _BEHAVIOUR.get(mode, "unknown"), "entries": entries}


def text(d: dict) -> Text:
    """The text view of report()'s keys."""
    t = trampoline_text(d["kernel_vsyscall"])
    vs = d["vsyscall"]
    t.kv("vsyscall", f"mode {vs['mode']}", kind="flag", note=vs["behaviour"])
    for en in vs["entries"]:
        state = f"mapped: {en['name'] or en['bytes']}" if en["mapped"] else "not mapped"
        t.line(f"    {en['address']:#x}  {en['call']:<13}", ("dim", state))
    return t


def trampoline_text(tv: Optional[dict]) -> Text:
    """The __kernel_vsyscall line of trampoline()'s `tv` (none for None)."""
    t = Text()
    if tv:
        exp = tv["expected_from_cpu_features"]
        ok = exp is None or exp == tv["kind"]
        t.kv("__kernel_vsyscall", f"{tv['address']:#x}  {tv['kind']}", kind="ok" if ok else "bad",
             note=f"{tv['detail']}; CPU features say {exp}", width=18)
    return t
