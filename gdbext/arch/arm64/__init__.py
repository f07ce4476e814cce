"""arm64 (AArch64 kernels): the `svc #0` ABI and AArch32 compat tasks, the
exception vectors, pt_regs, the 4 KiB-granule page walk, and the sysregs
and vectors commands.

`current` is SP_EL0 while the CPU runs kernel code (arch/arm64/include/asm/
current.h); during the first instructions of an EL0 exception SP_EL0 still
holds the user stack pointer until kernel_entry loads it from the per-cpu
__entry_task (entry.S), so kx falls back to that.  The per-cpu offset is
TPIDR_EL1 (== __per_cpu_offset[cpu]).
"""
from typing import Dict, Optional

from gdbext import errors
from gdbext.arch.base import Arch, EntryStub, PtRegsRule, RawCall, ResumePlan, SlideReadings, UserFrame
from gdbext.arch.arm64 import abi as abis
from gdbext.arch.arm64 import stepover
from gdbext.decoders import arm64_insn, arm64_paging, relocations
from gdbext.decoders import arm64_ptregs as ptregs
from gdbext.decoders import arm64_sysregs as sysregs
from gdbext.decoders.bits import MASK32, MASK64

GPRS = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "cpsr")
# QEMU 7.2 names VBAR_EL1 "VBAR" and SCTLR_EL1 "SCTLR" in its gdbstub
# (org.qemu.gdb.arm.sys.regs); both spellings are read, one is None.
SYSTEM = ("SP_EL0", "TPIDR_EL1", "ESR_EL1", "ELR_EL1", "SPSR_EL1", "FAR_EL1", "TTBR0_EL1", "TTBR1_EL1",
          "TCR_EL1", "MAIR_EL1", "VBAR", "VBAR_EL1", "SCTLR", "SCTLR_EL1", "CONTEXTIDR_EL1")
SCTLR_M = 1                       # MMU on (Arm ARM D17.2.118)
AUDIT_ARCH_AARCH64 = 0xC00000B7   # include/uapi/linux/audit.h
AUDIT_ARCH_ARM = 0x40000028
# Where, on the svc path, el0_svc_common has not yet stored syscallno
# (arch/arm64/kernel/entry-common.c, syscall.c): the number is still in
# pt_regs->regs[8] (regs[7] for compat).
BEFORE_SYSCALLNO = ("el0t_64_sync", "el0t_32_sync", "el0t_64_sync_handler", "el0t_32_sync_handler",
                    "el0_svc", "el0_svc_compat", "do_el0_svc", "do_el0_svc_compat")


# The vector tables VBAR_EL1 may hold (entry.S; tramp_vectors with KPTI).
VECTOR_TABLES = ("vectors", "tramp_vectors", "__bp_harden_el1_vectors")


def sysreg(regs: Dict[str, int], name: str) -> Optional[int]:
    """A system register under its architectural name or QEMU 7.2's
    shorter one (VBAR_EL1 -> VBAR)."""
    value = regs.get(name)
    if value is None and name.endswith("_EL1"):
        value = regs.get(name[:-4])
    return value


def va_bits(regs: Dict[str, int], upper: bool) -> int:
    tcr = regs.get("TCR_EL1")
    if tcr is None:
        return 48
    return 64 - ((tcr >> 16) & 0x3F if upper else tcr & 0x3F)


def lpa2(regs: Dict[str, int]) -> bool:
    """TCR_EL1.DS: FEAT_LPA2's 52-bit descriptors and TTBRs."""
    return bool((regs.get("TCR_EL1") or 0) >> sysregs.TCR_DS & 1)


class Arm64(Arch):
    name = "arm64"
    gdb_names = ("aarch64",)
    elf_machine = "EM_AARCH64"
    # Debian's arm64 vmlinux is -pie: sys_call_table and the rest read as
    # zeros in the file until .rela.dyn is applied.
    relative_relocation = relocations.R_AARCH64_RELATIVE
    pc = "pc"
    sp = "sp"
    general_regs = GPRS
    system_regs = SYSTEM
    abis = abis.ABIS
    pt_regs_size = ptregs.PT_REGS_SIZE
    pt_regs_offsets = ptregs.PT_REGS_OFFSETS
    # The upper half starts at 0xfff0... with 52-bit VAs, 0xffff... with 48.
    kernel_space_start = 0xFFF0000000000000
    # MODULES_VADDR..MODULES_END: 128 MiB below the image in 6.1, 2 GiB in
    # 6.12 (arch/arm64/include/asm/memory.h), with the image at the start of
    # the vmalloc area.
    module_area = (0xFFFF800000000000, 0xFFFF800080000000)
    default_thread_size = 16 * 1024       # THREAD_SIZE with 4 KiB pages, no KASAN
    user_space_end = 1 << 48              # TASK_SIZE_64 with 48-bit user VAs
    kernel_mode_name = "EL0 or EL1 with the MMU on"
    user_modes = {"64": "64-bit", "32": "AArch32 (compat)"}
    flags_register = "pstate"
    pt_regs_return = ("pt_regs->pc", "pt_regs->pstate")
    pt_regs_gdb_names = {**{f"x{i}": f"x{i}" for i in range(31)}, "sp": "sp", "pc": "pc", "pstate": "cpsr"}

    # -- ABIs -------------------------------------------------------------
    def nr_from_raw(self, abi, raw: int) -> int:
        # el0_svc_common(struct pt_regs *, int scno, ...): the number is an int.
        raw &= MASK32
        return raw - (1 << 32) if raw >> 31 else raw

    def user_abi(self, mode: str):
        return abis.ABI_32 if mode == "32" else abis.ABI_64

    def full_register(self, name: str) -> str:
        # AArch32's r0-r14 are the low halves of x0-x14 (Arm ARM D1.20.1).
        if name.startswith("r") and name[1:].isdigit():
            return "x" + name[1:]
        return name

    # -- the machine's state ------------------------------------------------
    def current_task_pointer(self, cpu: int) -> int:
        from gdbext.kernel import percpu, symbols
        if symbols.lookup("__entry_task") is None:
            raise errors.MissingSymbol("__entry_task")
        return percpu.address("__entry_task", cpu)

    def current_task(self, cpu: int, regs: Dict[str, int], read_u64) -> int:
        sp_el0 = regs.get("SP_EL0")
        if sp_el0 is not None and not self.in_user_mode(regs) and sp_el0 >= self.kernel_space_start:
            return sp_el0
        # At EL0, or in an EL0 exception before kernel_entry switched SP_EL0.
        return read_u64(self.current_task_pointer(cpu))

    def thread_flag_tables(self, version):
        from gdbext.arch.arm64 import thread_flags
        from gdbext.decoders.flags import tree_for
        t = tree_for(version, thread_flags.TREES)
        return {"ti_flags": t.tif, "ti_status": t.ts, "tree": t.tree}

    def code_address(self, value: int) -> int:
        # QEMU does not describe pointer authentication to gdb, so saved
        # return addresses keep their PAC bits (Arm ARM D8.10).
        return sysregs.strip_pac(value) if value >> 55 & 1 else value

    def in_user_mode(self, regs: Dict[str, int]) -> bool:
        return regs.get("cpsr") is not None and sysregs.current_el(regs["cpsr"]) == 0

    def decode_pt_regs(self, raw: bytes):
        return ptregs.decode_pt_regs(raw)

    def user_mode(self, pt) -> str:
        return pt.mode

    def saved_syscall_nr(self, pt, abi, pc):
        # Before el0_svc_common stores syscallno, the number is still in
        # regs[8] (regs[7] for compat) on the svc path.
        if pt.syscallno == ptregs.NO_SYSCALL and pc is not None and _function_at(pc) in BEFORE_SYSCALLNO:
            stub = abis.SVC_32 if abi is abis.ABI_32 else abis.SVC_64
            return self.nr_from_raw(abi, getattr(pt, stub.c_nr_member))
        return pt.syscallno

    def pt_regs_plausible(self, pt) -> bool:
        return pt.pstate >> 32 == 0 and (pt.pstate & 0x1F) in (0x0, 0x4, 0x5, 0x10)

    def flag_names(self, value: int):
        decoded = sysregs.decode_pstate(value)
        return decoded["set"] + [decoded["mode"]]

    def user_regs_report(self, pt):
        decoded = sysregs.decode_pstate(pt.pstate)
        report = {"pstate_mode": decoded["mode"], "pstate_flags": decoded["set"]}
        warnings = [] if pt.mode != "kernel" else [
            f"the saved PSTATE {pt.pstate:#x} is {decoded['mode']}, not a user mode"]
        return report, warnings

    def user_regs_rows(self, data):
        rows = [(name, f"{value:#x}", None) for name, value in data["regs"].items()]
        if "pstate_mode" in data:
            rows = [(n, v, f"{data['pstate_mode']} {' '.join(data['pstate_flags'])}".strip() if n == "pstate"
                     else note) for n, v, note in rows]
        return rows

    # -- entry stubs --------------------------------------------------------------
    def live_call(self, stub: EntryStub, regs: Dict[str, int], view) -> RawCall:
        a = abis.ABI_32 if stub is abis.SVC_32 else abis.ABI_64
        mask = a.mask
        args = [(r, regs[self.full_register(r)] & mask) for r in a.arg_regs]
        nr = self.nr_from_raw(a, regs[self.full_register(a.nr_reg)])
        return RawCall(a.name, nr, args, sysreg(regs, "ELR_EL1"), sysreg(regs, "SPSR_EL1"), stub=stub.name)

    def vector_slot_stub(self, regs: Dict[str, int]) -> Optional[EntryStub]:
        # VBAR_EL1 + 0x400 / + 0x600: the lower-EL AArch64 / AArch32
        # synchronous slots (Arm ARM D1.10.2); ESR_EL1.EC 0x15 / 0x11 is an
        # SVC from that state (D17.2.37).  kernel_ventry has touched only sp
        # (and x0 inside its overflow test) before branching (entry.S).
        vbar, esr = sysreg(regs, "VBAR_EL1"), sysreg(regs, "ESR_EL1")
        if vbar is None or esr is None:
            return None
        offset = regs[self.pc] - vbar
        slot = offset & ~0x7F
        stub = {0x400: abis.SVC_64, 0x600: abis.SVC_32}.get(slot)
        if stub is None or (esr >> 26) & 0x3F != (0x15 if stub is abis.SVC_64 else 0x11):
            return None
        from gdbext.kernel import backend
        code = backend.cached(("arm64-vector-slot", vbar + slot),
                              lambda: backend.read_kernel(vbar + slot, 0x80))
        window = arm64_insn.x0_clobbered_window(code)
        if window is not None and window[0] <= offset - slot <= window[1]:
            raise errors.KxError("it is inside kernel_ventry's stack-overflow test, where x0 holds sp: "
                                 "step past it (or continue to el0t_64_sync) for the arguments")
        return stub

    def pt_regs_pending(self, stub: EntryStub, regs: Dict[str, int], stack: int, pt_regs: int) -> bool:
        # kernel_entry's STPs save x0-x29 first, then it clears them: until the
        # last STP the live registers are the user's (entry.S).
        from gdbext.kernel import backend, symbols
        start = symbols.lookup(stub.name)
        if start is None:
            return False
        offset = regs[self.pc] - start
        stores = backend.cached(("arm64-stub-stores", start), lambda: arm64_insn.leading_stores(
            backend.read_kernel(start, self.entry_code_size)))
        return 0 <= offset <= stores

    entry_code_size = 128

    def entry_user_frame(self, stub, offset, code, regs, read) -> Optional[UserFrame]:
        if offset > arm64_insn.leading_stores(code):
            return None
        elr, spsr, sp_el0 = sysreg(regs, "ELR_EL1"), sysreg(regs, "SPSR_EL1"), regs.get("SP_EL0")
        if None in (elr, spsr, sp_el0):
            return None
        user = {name: regs[name] for name in GPRS if name in regs}
        user.update(pc=elr, cpsr=spsr, sp=sp_el0)
        mode = ptregs.pstate_mode(spsr)
        return UserFrame(user, mode if mode != "kernel" else "64", "live registers (pc = ELR_EL1, sp = SP_EL0)")

    def call_from_pt_regs(self, pt, stub: Optional[EntryStub], pc: int, task: Dict) -> RawCall:
        where = _function_at(pc)
        if where in VECTOR_TABLES:
            # kernel_ventry has not branched to el0t_64_sync yet: pt_regs on
            # the stack are the previous entry's (entry.S).
            raise errors.KxError(f"it is in the exception vector table ({where}) before the entry handler: "
                                 "pt_regs are not written yet; continue to el0t_64_sync (or el0t_32_sync)")
        compat = bool(pt.pstate & ptregs.PSR_MODE32_BIT)
        a = abis.ABI_32 if compat else abis.ABI_64
        notes = []
        if pt.syscallno != ptregs.NO_SYSCALL:
            nr = pt.syscallno
            args = [(hw, getattr(pt, f) & a.mask) for hw, f in zip(a.arg_regs, a.ptregs_args)]
        elif stub is not None or where in BEFORE_SYSCALLNO:
            member = (abis.SVC_32 if compat else abis.SVC_64).c_nr_member
            nr = self.nr_from_raw(a, getattr(pt, member))
            args = [(hw, getattr(pt, f"x{i}") & a.mask) for i, hw in enumerate(a.arg_regs)]
            notes.append(f"el0_svc_common() has not stored syscallno yet: nr is pt_regs->regs[{member[1:]}]")
        else:
            raise errors.KxError("it is not in a system call: pt_regs.syscallno is NO_SYSCALL "
                                 "(an interrupt or exception entry)")
        name = stub.name if stub else (abis.SVC_32 if compat else abis.SVC_64).name
        return RawCall(a.name, nr, args, pt.pc, pt.pstate, notes, name)

    def direct_calls(self, code: bytes, start: int):
        return arm64_insn.direct_calls(code, start)

    def seccomp_arch(self, abi: str) -> Optional[int]:
        # syscall_get_arch() (arch/arm64/include/asm/syscall.h).
        return {"64": AUDIT_ARCH_AARCH64, "32": AUDIT_ARCH_ARM}.get(abi)

    # -- tracing --------------------------------------------------------------
    trace_registers = ("x0", "sp", "x30", "cpsr")
    c_entry_return_slot = None          # BL leaves it in x30

    def c_entry_pt_regs_rule(self, function: str) -> PtRegsRule:
        # el0t_64_sync_handler(struct pt_regs *), el0_svc(struct pt_regs *),
        # do_el0_svc(struct pt_regs *): the first argument, x0 (AAPCS64).
        return PtRegsRule("x0")

    def pt_regs_after_c_call_rule(self) -> PtRegsRule:
        # entry_handler calls C with `mov x0, sp` and sp stays at pt_regs
        # (entry.S).
        return PtRegsRule("sp")

    def return_address_at_c_entry(self, regs, read) -> int:
        return sysregs.strip_pac(regs["x30"])

    def follows_call(self, pc: int, read) -> bool:
        hit = arm64_insn.branch_target(arm64_insn.word(read(pc - 4, 4)), pc - 4)
        return hit is not None and hit[0] == "bl"

    def plan_resume(self, address: int, code: bytes) -> ResumePlan:
        return stepover.plan_resume(address, code)

    def emulate(self, plan: ResumePlan, regs: Dict[str, int]):
        return stepover.emulate(plan, regs)

    breakpoint_kind = 4                 # A64 instructions (gdb's aarch64_breakpoint_kind_from_pc)
    loop_extra_registers = ("TTBR0_EL1", "TCR_EL1")

    def read_user_in_loop(self, hit, address: int, size: int) -> bytes:
        # QEMU's debug reads honour PSTATE.PAN, which the kernel keeps set:
        # the stub's virtual reads cannot reach user pages at EL1.  Walk
        # TTBR0 and read physically instead.
        ttbr0 = hit.register("TTBR0_EL1")
        if ttbr0 is None:
            return hit.read(address, size)
        regs = {"TTBR0_EL1": ttbr0, "TCR_EL1": hit.register("TCR_EL1")}

        def read_u64(phys):
            return int.from_bytes(hit.read_phys(phys, 8), "little")
        out, pos = b"", address
        try:
            while len(out) < size:
                tr = self.translate(pos, regs, read_u64)
                n = min(size - len(out), tr.page_size - (pos & (tr.page_size - 1)))
                out += hit.read_phys(tr.phys, n)
                pos += n
        except errors.DecodeError as exc:
            raise errors.MemoryUnreadable(address, size, f"not mapped in TTBR0_EL1's tables ({exc})") from None
        return out

    def gdb_register_layout(self):
        # QEMU's aarch64-core.xml: x0-x30, sp, pc (8 bytes), cpsr (4 bytes).
        layout = {f"x{i}": (i, 8 * i, 8) for i in range(31)}
        layout.update(sp=(31, 248, 8), pc=(32, 256, 8), cpsr=(33, 264, 4))
        return layout

    # -- memory -----------------------------------------------------------------
    def translate(self, address, regs, read_phys_u64, root=None):
        upper = arm64_paging.is_upper(address)
        table = self._root_for(address, regs, root)
        tbi = bool((regs.get("TCR_EL1") or 0) >> (38 if upper else 37) & 1)     # TBI1 / TBI0
        return arm64_paging.translate(address & MASK64, table, read_phys_u64, va_bits(regs, upper), lpa2(regs), tbi)

    def _root_for(self, address: int, regs: Dict[str, int], root: Optional[int]) -> int:
        """TTBR1 for the upper half and TTBR0 for the lower, unless `root`
        names other tables; a user root (TTBR0's) never walks the upper half."""
        ttbr0, ttbr1 = regs.get("TTBR0_EL1") or 0, regs.get("TTBR1_EL1") or 0
        if arm64_paging.is_upper(address):
            if root is None or self.root_address(root) == self.root_address(ttbr0):
                return ttbr1
            return root
        return ttbr0 if root is None else root

    page_table_root_name = "TTBR0_EL1/TTBR1_EL1"

    def page_table_root(self, regs: Dict[str, int]) -> int:
        return regs.get("TTBR0_EL1") or 0

    def root_address(self, root: int) -> int:
        # BADDR[47:6] in both formats: Linux's first tables are 64-byte
        # aligned or more (a 16-entry level -1 table is 128 bytes); with
        # TCR.DS bits [5:2] are BADDR[51:48], which a comparison of roots
        # without TCR_EL1 cannot use (the lab's guests have no memory there).
        return root & arm64_paging.TTBR_BADDR_MASK_DS

    def describe_walk(self, address, regs, translation=None, fault=None):
        steps = translation.levels if translation is not None else getattr(fault, "steps", [])
        page_fault = fault if isinstance(fault, arm64_paging.PageFault) else None
        out = arm64_paging.describe_walk(address & MASK64, steps, translation, page_fault,
                                         va_bits(regs, arm64_paging.is_upper(address)), lpa2(regs))
        if steps:
            # The table the walk started in (TTBR1's for the upper half).
            out["walked_root"] = steps[0].address - 8 * out["levels"][0]["index"]
        return out

    def kernel_page_table(self, regs, read_phys_u64) -> int:
        from gdbext.arch.arm64 import kpti
        return kpti.kernel_root(regs, read_phys_u64, va_bits(regs, True))

    def paging_off(self, regs: Dict[str, int]) -> Optional[str]:
        sctlr = sysreg(regs, "SCTLR_EL1")
        if sctlr is not None and not sctlr & SCTLR_M:
            return f"runs with the MMU off (SCTLR_EL1={sctlr:#x}): early boot"
        return None

    def kernel_mode_ready(self, regs: Dict[str, int]) -> bool:
        # At EL0 too: the kernel is up, and kx reads it through TTBR1_EL1's
        # tables (or swapper_pg_dir's under KPTI) as at x86-64's CPL 3.
        cpsr = regs.get("cpsr")
        return self.paging_off(regs) is None and cpsr is not None and sysregs.current_el(cpsr) in (0, 1)

    # -- KASLR ----------------------------------------------------------------------
    # KIMAGE_VADDR of 6.1 (6.12 links the image higher); per-cpu data is part
    # of the image on arm64 and moves with it.  The slide is
    # BIT(VA_BITS_MIN - 3) + (seed & GENMASK(VA_BITS_MIN - 3, 0)) rounded to
    # the image's 64 KiB alignment (arch/arm64/kernel/pi/kaslr_early.c,
    # SEGMENT_ALIGN), below 2^47 with 48-bit VAs.
    kaslr_image_start = 0xFFFF800008000000
    kaslr_align = 0x10000
    kaslr_max_slide = 1 << 47

    def kaslr_readings(self, table, cpu: int, inject: bool) -> SlideReadings:
        from gdbext.arch.arm64 import cpu_reports
        return cpu_reports.kaslr_readings(table, cpu)

    def kaslr_memory_layout(self, slide: int, warnings):
        from gdbext import machine
        from gdbext.arch.arm64 import layout
        from gdbext.kernel import guest_kernel, symbols
        where = symbols.lookup("vmcoreinfo_data")
        info = guest_kernel.vmcoreinfo({"vmcoreinfo_data": where} if where else {}, machine.check_cpu(None))
        return layout.layout(info, machine.registers().get("TCR_EL1"), slide, warnings)

    def page_address(self, page, read):
        # page_to_virt() (arch/arm64/include/asm/memory.h, 6.1 and 6.12):
        # PAGE_OFFSET + (page - VMEMMAP_START) / sizeof(struct page) pages,
        # with PAGE_OFFSET = -(1 << VA_BITS); both from the kernel's VMCOREINFO.
        from gdbext.arch.arm64 import layout
        from gdbext.kernel import guest_kernel, symbols, types
        cache = types.cache()
        if "arm64-page-to-virt" not in cache:
            where = symbols.lookup("vmcoreinfo_data")
            if where is None:
                return None
            values = layout.parse(guest_kernel.vmcoreinfo_at(where, read))
            if None in (values["va_bits"], values["vmemmap_start"]):
                return None
            cache["arm64-page-to-virt"] = ((-(1 << values["va_bits"])) & MASK64, values["vmemmap_start"])
        page_offset, vmemmap = cache["arm64-page-to-virt"]
        index, rest = divmod(page - vmemmap, types.sizeof("struct page"))
        return page_offset + index * 4096 if index >= 0 and not rest else None

    def kaslr_layout_rows(self, data):
        from gdbext.arch.arm64 import layout
        return layout.rows(data)

    # -- the vDSO -------------------------------------------------------------------
    # arch/arm64/kernel/vdso/vdso.lds.S and vdso32/vdso.lds.S (6.1, 6.12).
    vdso_entry_points = ("__kernel_clock_gettime", "__kernel_gettimeofday", "__kernel_clock_getres",
                         "__kernel_rt_sigreturn", "__kernel_getrandom", "__vdso_clock_gettime",
                         "__vdso_gettimeofday", "__vdso_clock_getres", "__vdso_clock_gettime64")

    def vdso_kernel_image(self, task, cpu: int):
        from gdbext.arch.arm64 import vdso
        return vdso.kernel_image(task, cpu)

    def vdso_special_mappings(self, cpu: int):
        from gdbext.arch.arm64 import vdso
        return vdso.special_mappings(cpu)

    def vdso_report(self, vdso_, cpu: int):
        from gdbext.arch.arm64 import vdso
        return vdso.report(vdso_, cpu)

    def vdso_text(self, data):
        from gdbext.arch.arm64 import vdso
        return vdso.text(data)

    # -- commands -------------------------------------------------------------------
    def register_commands(self) -> None:
        import importlib
        importlib.import_module("gdbext.commands.arm64").register()


def _function_at(pc: int) -> Optional[str]:
    from gdbext.kernel import symbols
    hit = symbols.table().describe(pc)
    if hit is None:
        # Under KPTI the trampoline runs at its fixmap alias, outside every
        # symbol (the mapping is global: any vCPU's tables translate it).
        from gdbext import machine
        from gdbext.arch.arm64 import kpti
        return "tramp_vectors" if kpti.trampoline_alias(pc, machine.selected_cpu()) is not None else None
    return hit[0].split(".", 1)[0]


ARCH = Arm64()
