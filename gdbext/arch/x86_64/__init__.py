"""x86-64: the `syscall` ABI, ia32 compat (int $0x80, sysenter, 32-bit
syscall) and x32; 4- and 5-level paging with KPTI; the MSR/GDT/IDT/TSS
commands."""
from typing import Callable, Dict, Optional

from gdbext import errors
from gdbext.arch.base import Arch, EntryStub, PtRegsRule, RawCall, ResumePlan, SyscallAbi, TableChoice, UserFrame
from gdbext.arch.x86_64 import abi as abis
from gdbext.arch.x86_64 import gdbregs, stepover, user_regs
from gdbext.decoders import control_regs, descriptors, paging, x86_entry, x86_switch
from gdbext.decoders.bits import MASK32, MASK64
from gdbext.decoders.descriptors import KERNEL_CS, USER32_CS, USER_CS, USER_DS
from gdbext.decoders.msr import decode_rflags
from gdbext.decoders.ptregs import PT_REGS_OFFSETS, PT_REGS_SIZE, decode_pt_regs

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags")
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
TS_COMPAT = 0x0002  # arch/x86/include/asm/thread_info.h
CR0_PG = 1 << 31    # SDM Vol.3A 2.5
CR4_LA57 = 1 << 12  # SDM Vol.3A 4.5
EFER_LMA = 1 << 10  # long mode active, SDM Vol.3A 2.2.1
AUDIT_ARCH_X86_64 = 0xC000003E  # include/uapi/linux/audit.h
AUDIT_ARCH_I386 = 0x40000003


def _u32(data: bytes) -> int:
    return int.from_bytes(data[:4], "little")


class X86_64(Arch):
    name = "x86_64"
    gdb_names = ("i386:x86-64",)
    elf_machine = "EM_X86_64"
    pc = "rip"
    sp = "rsp"
    general_regs = GPRS + SEGMENTS
    system_regs = ("fs_base", "gs_base", "k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer")
    abis = abis.ABIS
    pt_regs_size = PT_REGS_SIZE
    pt_regs_offsets = PT_REGS_OFFSETS
    kernel_space_start = 0xFFFF800000000000   # lowest canonical kernel address (4-level)
    # MODULES_VADDR (__START_KERNEL_map + KERNEL_IMAGE_SIZE: 512 MiB, or
    # 1 GiB with KASLR) to MODULES_END (asm/pgtable_64_types.h, 6.1, 6.12).
    module_area = (0xFFFFFFFFA0000000, 0xFFFFFFFFFF000000)
    default_thread_size = 16 * 1024           # without KASAN (asm/page_64_types.h)
    # IDT stubs (idtentry.h) also call their C handler with %rsp = pt_regs.
    other_entry_prefixes = ("asm_exc_", "asm_sysvec_", "asm_common_interrupt", "asm_spurious_interrupt")
    user_space_end = 0x0000800000000000       # above the 47-bit user half (4-level)
    kernel_mode_name = "64-bit paging mode"   # what kernel_mode_ready() tests
    user_modes = user_regs.USER_MODES
    flags_register = "rflags"
    pt_regs_return = ("pt_regs->ip", "pt_regs->flags")
    pt_regs_gdb_names = user_regs.GDB_NAMES

    # The descriptor tables as kx msr/gdt/idt/tss read them (x86 only).
    gdt_entries = descriptors.GDT_ENTRIES    # asm/segment.h
    gdt_slot_names = None                    # decoders.descriptors.GDT_SLOT_NAMES
    gdt_long_mode = True                     # 16-byte system descriptors
    idt_gate_size = 16                       # SDM Vol.3A 6.14.1
    tss_selector = descriptors.TSS_SEL
    kernel_cs = KERNEL_CS
    # cpu_entry_area's read-only IDT alias (idt_map_in_cea(), asm/cpu_entry_area.h).
    cea_ro_idt = 0xFFFFFE0000000000
    selector_names = descriptors.SELECTOR_NAMES
    # kx cr: CR4's bits with their meaning in this mode, and what CR8 is.
    cr4_bits = control_regs.CR4_BITS
    cr8_note = "task-priority register"

    def selector_name(self, selector: int):
        return descriptors.selector_name(selector)

    def cr3_view(self, cr3: int, cr4: int, cpu: int) -> Dict:
        """kx cr's CR3 fields: the PGD, PCID, and which half of a KPTI pair."""
        from gdbext.arch.x86_64 import control
        return control.cr3_view(cr3, bool(cr4 & control.CR4_PCIDE), control.pti_enabled(cpu))

    def top_of_stack_padding(self, lookup) -> int:
        # TOP_OF_KERNEL_STACK_PADDING (arch/x86/include/asm/thread_info.h):
        # 0 on x86-64, 16 with CONFIG_X86_FRED (6.9+), recognised by its
        # entry point symbol.
        return 16 if lookup("asm_fred_entrypoint_user") is not None else 0

    # -- ABIs -------------------------------------------------------------
    def split_nr(self, abi: SyscallAbi, nr: int) -> TableChoice:
        if abi.name == "64" and nr >= 0 and nr & abis.X32_SYSCALL_BIT:
            return TableChoice("x32", nr & ~abis.X32_SYSCALL_BIT,
                               f"x32 ABI: nr {nr:#x} has __X32_SYSCALL_BIT (0x40000000) set", True)
        return TableChoice(abi.name, nr)

    def nr_from_raw(self, abi: SyscallAbi, raw: int) -> int:
        if abi.bits == 64:
            # do_syscall_64 compares the number as an unsigned long with
            # the x32 bit cleared (arch/x86/entry/common.c).
            raw &= MASK64
            return raw - (1 << 64) if raw >> 63 else raw
        return super().nr_from_raw(abi, raw)

    def user_abi(self, mode: str) -> SyscallAbi:
        return abis.ABI_32 if mode == "32" else abis.ABI_64

    def full_register(self, name: str) -> str:
        # eax, ebx, ... are the low halves of rax, rbx, ... (SDM Vol.1 3.4.1.1)
        return "r" + name[1:] if len(name) == 3 and name[0] == "e" else name

    # -- the machine's state ------------------------------------------------
    def current_task_pointer(self, cpu: int) -> int:
        """Per-cpu `current_task` up to 6.1; `pcpu_hot.current_task` from
        6.2 ("x86/percpu: Move current_task to percpu hot section") to 6.14;
        plain `current_task` again from 6.15, when pcpu_hot was dissolved."""
        from gdbext.kernel import percpu, symbols, types
        if symbols.lookup("pcpu_hot") is not None:
            if types.has_member("struct pcpu_hot", "current_task"):
                return percpu.address("pcpu_hot", cpu, "current_task", "struct pcpu_hot")
            if symbols.lookup("current_task") is None:
                # 6.2-6.14 without DWARF (a symbol-only vmlinux): the symbol
                # is there, its layout is not.
                types.member("struct pcpu_hot", "current_task")  # raises MissingType, naming it
        if symbols.lookup("current_task") is None:
            raise errors.MissingSymbol("current_task (or pcpu_hot.current_task)")
        return percpu.address("current_task", cpu)

    def cpu_stack_top(self, cpu: int) -> Optional[int]:
        from gdbext.arch.x86_64 import cpu_setup as kcpu
        return kcpu.top_of_stack(cpu)

    def entry_stack_top(self, cpu: int) -> int:
        """The top of `cpu`'s cpu_entry_area entry stack: TSS.sp0."""
        from gdbext.arch.x86_64 import cpu_setup as kcpu
        return kcpu.tss(cpu).rsp[0]

    def thread_flag_tables(self, version):
        from gdbext.arch.x86_64 import thread_flags
        from gdbext.decoders.flags import tree_for
        t = tree_for(version, thread_flags.TREES)
        return {"ti_flags": t.tif, "ti_status": t.ts, "tree": t.tree}

    def in_user_mode(self, regs: Dict[str, int]) -> bool:
        return regs.get("cs") is not None and regs["cs"] & 3 == 3

    def decode_pt_regs(self, raw: bytes):
        return decode_pt_regs(raw)

    def user_mode(self, pt) -> str:
        return pt.mode

    def pt_regs_plausible(self, pt) -> bool:
        return pt.cs in (KERNEL_CS, USER_CS, USER32_CS)

    def flag_names(self, value: int):
        return decode_rflags(value)["set"]

    def user_regs_report(self, pt):
        return user_regs.report(pt)

    def user_regs_rows(self, data):
        return user_regs.rows(data)

    def entry_user_frame(self, stub, offset, code, regs, read) -> Optional[UserFrame]:
        if offset > x86_entry.stack_untouched(code):
            return None
        if stub.name in ("entry_SYSCALL_64", "entry_SYSCALL_compat"):
            # SYSCALL saved RIP in RCX and RFLAGS in R11 and left RSP alone
            # (SDM Vol.2B SYSCALL); every other register is still the user's.
            compat = stub.name == "entry_SYSCALL_compat"
            user = dict(regs, rip=regs["rcx"], eflags=regs["r11"], cs=USER32_CS if compat else USER_CS,
                        ss=USER_DS)
            return UserFrame(user, "32" if compat else "64", "live registers (rip = rcx)")
        if stub.name in ("asm_int80_emulation", "entry_INT80_compat"):
            # The gate pushed SS, RSP, RFLAGS, CS, RIP and %rsp points at RIP
            # (SDM Vol.3A 6.14.2); the entry stack is mapped in the user
            # page table too (cpu_entry_area).
            frame = read(regs["rsp"], 40)
            rip, cs, flags, sp, ss = (int.from_bytes(frame[i:i + 8], "little") for i in range(0, 40, 8))
            user = dict(regs, rip=rip, cs=cs, eflags=flags, rsp=sp, ss=ss)
            return UserFrame(user, "32" if cs == USER32_CS else "64", "the IRET frame")
        return None  # sysenter saves no user state the stub could be asked for

    def pt_regs_pending(self, stub: EntryStub, regs: Dict[str, int], stack: int, pt_regs: int) -> bool:
        # Until the stub has switched to the task stack and pushed the
        # frame, rsp is outside [stack, pt_regs].
        return not (stack <= regs["rsp"] <= pt_regs)

    def live_call(self, stub: EntryStub, regs: Dict[str, int], view) -> RawCall:
        if stub.name == "entry_SYSCALL_64":
            # SYSCALL left RIP in RCX and RFLAGS in R11 (SDM Vol.2B, SYSCALL).
            nr = self.nr_from_raw(abis.ABI_64, regs["rax"])
            return RawCall("64", nr, [(r, regs[r]) for r in abis.ABI_64.arg_regs],
                           regs["rcx"], regs["r11"], stub=stub.name)
        return _live_compat(stub, regs, view)

    def call_from_pt_regs(self, pt, stub: Optional[EntryStub], pc: int, task: Dict) -> RawCall:
        orig_ax, notes = pt.orig_ax, []
        if orig_ax < 0 and _int80_before_orig_ax(stub, pc):
            # int $0x80 as an IDT entry (6.1.66+ / 6.7+, common.c
            # int80_emulation): the idtentry stub pushes -1 as orig_ax and
            # int80_emulation() itself stores regs->orig_ax = regs->ax & 0xffffffff.
            # Until it has, the number is still in pt_regs->ax.
            orig_ax = pt.ax & MASK32
            notes.append("int80_emulation() has not stored orig_ax yet: nr is pt_regs->ax")
        if orig_ax < 0:
            raise errors.KxError("it is not in a system call: pt_regs.orig_ax is -1 "
                                 "(an interrupt or exception entry)")
        compat = pt.cs == USER32_CS or bool((task.get("ti_status") or 0) & TS_COMPAT) or bool(notes)
        abi = abis.ABI_32 if compat else abis.ABI_64
        mask = abi.mask
        args = [(hw, getattr(pt, f) & mask) for hw, f in zip(abi.arg_regs, abi.ptregs_args)]
        name = stub.name if stub else ("entry_SYSCALL_64" if not compat else None)
        return RawCall(abi.name, self.nr_from_raw(abi, orig_ax), args, pt.ip, pt.flags, notes, name)

    def seccomp_arch(self, abi: str) -> Optional[int]:
        # syscall_get_arch() (arch/x86/include/asm/syscall.h): i386 for a
        # compat syscall, else x86-64, x32 included (its nr has the x32 bit).
        return {"64": AUDIT_ARCH_X86_64, "x32": AUDIT_ARCH_X86_64, "32": AUDIT_ARCH_I386}.get(abi)

    def direct_calls(self, code: bytes, start: int):
        # `e8 rel32`, relative to the next instruction (SDM Vol.2A CALL).
        # A byte-wise scan: stubs are short and the callee must match.
        out = []
        for i in range(len(code) - 4):
            if code[i] == 0xE8:
                rel = int.from_bytes(code[i + 1:i + 5], "little", signed=True)
                out.append((start + i, (start + i + 5 + rel) & MASK64, start + i + 5))
        return out

    # -- tracing --------------------------------------------------------------
    trace_registers = ("rdi", "rsi", "rsp", "cs")
    c_entry_return_slot = "rsp"   # `call` pushed it (SDM Vol.2A CALL)

    def c_entry_pt_regs_rule(self, function: str) -> PtRegsRule:
        # do_syscall_64(struct pt_regs *, int) since 5.12 ("x86/entry: Use
        # int everywhere for system call numbers"), int80_emulation(struct
        # pt_regs *), do_int80_syscall_32 / do_fast_syscall_32(struct
        # pt_regs *): pt_regs is the first argument, in rdi (System V AMD64
        # ABI).  Up to 5.11 it was do_syscall_64(unsigned long nr, struct
        # pt_regs *regs) (arch/x86/entry/common.c): rdi then holds a small
        # number and pt_regs is in rsi.  A pointer to the task stack is
        # always a kernel address, a syscall number never is.
        if function == "do_syscall_64":
            return PtRegsRule("rdi", "rsi", self.kernel_space_start)
        return PtRegsRule("rdi")

    def pt_regs_after_c_call_rule(self) -> PtRegsRule:
        # The stubs call C with %rsp at pt_regs and pop nothing before the
        # return path reads them (entry_64.S, entry_64_compat.S).
        return PtRegsRule("rsp")

    def return_address_at_c_entry(self, regs, read) -> int:
        # `call` pushed it: it is at [rsp] on the first instruction.
        return int.from_bytes(read(regs["rsp"], 8), "little")

    def follows_call(self, pc: int, read) -> bool:
        # `call rel32` (e8 + 4 bytes, SDM Vol.2A CALL) is how the stubs
        # call into C.
        return read(pc - 5, 1) == b"\xe8"

    def plan_resume(self, address: int, code: bytes) -> ResumePlan:
        return stepover.plan_resume(address, code)

    def emulate(self, plan: ResumePlan, regs: Dict[str, int]):
        return stepover.emulate(plan, regs)

    def gdb_register_layout(self):
        return dict(gdbregs.QEMU_G_LAYOUT)

    # -- the kernel's code -------------------------------------------------------
    def decode_syscall_switch(self, code: bytes, start: int):
        return x86_switch.decode_switch(code, start)

    # -- memory -----------------------------------------------------------------
    def paging_off(self, regs: Dict[str, int]) -> Optional[str]:
        if regs.get("cr0") is not None and not regs["cr0"] & CR0_PG:
            return (f"runs with paging off (CR0={regs['cr0']:#x}): the kernel has not set up its "
                    "page tables yet (early boot)")
        return None

    def kernel_mode_ready(self, regs: Dict[str, int]) -> bool:
        # 64-bit mode with paging, as every kernel C path runs; not so at
        # the reset vector, in real mode or in the decompressor's 32-bit
        # code (QEMU -S, early boot).  SDM Vol.3A 9.8.5.
        return bool((regs.get("cr0") or 0) & CR0_PG and (regs.get("efer") or 0) & EFER_LMA)

    def la57(self, regs: Dict[str, int]) -> bool:
        return bool((regs.get("cr4") or 0) & CR4_LA57)

    def translate(self, address, regs, read_phys_u64, root=None):
        cr3 = regs["cr3"] if root is None else root
        return paging.translate(address & MASK64, cr3, read_phys_u64, self.la57(regs))

    def page_table_root(self, regs: Dict[str, int]) -> int:
        return regs["cr3"]

    def root_address(self, root: int) -> int:
        return paging.cr3_pgd_address(root)

    def page_table_views(self, root, regs, cpu):
        # Under PTI every mm has an 8 KiB PGD pair: kernel half, user half
        # (bit 12); arch/x86_64/control.py tells which one `root` is.
        from gdbext.arch.x86_64 import control
        view = control.cr3_view(root, bool((regs.get("cr4") or 0) & control.CR4_PCIDE),
                                control.pti_enabled(cpu))
        if view["view"] in ("user", "kernel"):
            pair = [("user", view["user_cr3"]), ("kernel", view["kernel_cr3"])]
            return sorted(pair, key=lambda p: p[0] != view["view"])
        return [("kernel and user" if view["view"] == "only" else "current", root)]

    def describe_walk(self, address, regs, translation=None, fault=None):
        steps = translation.levels if translation is not None else getattr(fault, "steps", [])
        page_fault = fault if isinstance(fault, paging.PageFault) else None
        return paging.describe_walk(address & MASK64, steps, self.la57(regs), translation, page_fault)

    def kernel_page_table(self, regs: Dict[str, int], read_phys_u64: Callable[[int], int]) -> int:
        # Under PTI the user CR3 has bit 12 set and the kernel PGD is the
        # 8 KiB-aligned page below it (arch/x86/entry/calling.h); without
        # PTI 7.2's PGD may itself have bit 12 set (paging.kernel_cr3).
        return paging.kernel_cr3(regs["cr3"], read_phys_u64)

    # -- KASLR ----------------------------------------------------------------------
    def kaslr_readings(self, table, cpu: int, inject: bool):
        from gdbext.arch.x86_64 import kaslr_sources
        return kaslr_sources.readings(table, cpu, inject)

    # __START_KERNEL_map + CONFIG_PHYSICAL_START (0x1000000, the default and
    # Debian's; arch/x86/Kconfig).
    kernel_link_text = 0xFFFFFFFF81000000

    def kernel_text_pointers(self, cpu: int):
        from gdbext.arch.x86_64 import kaslr_sources
        return kaslr_sources.text_pointers(cpu)

    def kernel_data_ranges(self, cpu: int):
        if self.pointer_size != 8:
            return []      # the i386 kernel: another page-table format, another map
        from gdbext import machine
        from gdbext.arch.x86_64 import kernel_image_map
        return kernel_image_map.data_ranges(cpu, self.la57(machine.registers(cpu)))

    def page_address(self, page, read):
        # SPARSEMEM_VMEMMAP: pfn = page - vmemmap_base, the memory at
        # page_offset_base + pfn * 4 KiB (arch/x86/include/asm/page_64.h);
        # both bases are variables under CONFIG_RANDOMIZE_MEMORY, else the
        # 4-level defaults (Documentation/arch/x86/x86_64/mm.rst).
        from gdbext.decoders.kaslr import DEFAULT_BASES
        from gdbext.kernel import symbols, types

        def base(name):
            at = symbols.lookup(name)
            return int.from_bytes(read(at, 8), "little") if at is not None else DEFAULT_BASES[4][name]
        vmemmap, size = base("vmemmap_base"), types.sizeof("struct page")
        if page < vmemmap or (page - vmemmap) % size:
            return None
        return base("page_offset_base") + (page - vmemmap) // size * 4096

    def kaslr_memory_layout(self, slide: int, warnings):
        from gdbext import machine
        from gdbext.arch.x86_64 import kaslr_sources
        levels = 5 if self.la57(machine.registers()) else 4
        return kaslr_sources.memory_layout(slide, levels, warnings)

    def kaslr_layout_rows(self, data):
        from gdbext.arch.x86_64 import kaslr_sources
        return kaslr_sources.layout_rows(data)

    # -- the vDSO -------------------------------------------------------------------
    # The images a mm can use and the ABI each serves (asm/vdso.h).  A kernel
    # has one spelling: "x86/entry/vdso: rename vdso_image_* to vdso*_image"
    # (H. Peter Anvin, late 2025: 6.12 has vdso_image_64, 7.2 vdso64_image);
    # kx uses the symbols the kernel has (kernel/vdso.py kernel_images).
    vdso_images = (("vdso_image_64", "64", "64-bit"), ("vdso_image_x32", "x32", "x32"),
                   ("vdso_image_32", "32", "32-bit (compat)"),
                   ("vdso64_image", "64", "64-bit"), ("vdsox32_image", "x32", "x32"),
                   ("vdso32_image", "32", "32-bit (compat)"))
    # asm/vdso/ and vdso32/ of 6.1 and 6.12; __vdso_getrandom is 6.11+.
    vdso_entry_points = ("__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_getcpu",
                         "__vdso_clock_getres", "__vdso_clock_gettime64", "__vdso_getrandom",
                         "__vdso_sgx_enter_enclave", "__kernel_vsyscall", "__kernel_sigreturn",
                         "__kernel_rt_sigreturn")

    def vdso_report(self, vdso, cpu: int):
        from gdbext.arch.x86_64 import vdso as x86_vdso
        return x86_vdso.report(vdso, cpu)

    def vdso_text(self, data):
        from gdbext.arch.x86_64 import vdso as x86_vdso
        return x86_vdso.text(data)

    # -- commands -------------------------------------------------------------------
    def read_msrs(self, cpu, names=None):
        from gdbext.arch.x86_64 import cpustate
        from gdbext.decoders import msr as msrdec
        wanted = [msrdec.lookup_msr(str(n)) for n in names or ()] or None
        return cpustate.msrs(cpu, wanted)

    def read_tss(self, cpu):
        from gdbext.arch.x86_64 import cpustate
        return cpustate.tss(cpu)

    def register_commands(self) -> None:
        # kx msr, gdt, idt, tss live with the other commands (gdbext.commands,
        # the checkout's commands/), which need gdb: imported only now.
        import importlib
        importlib.import_module("gdbext.commands.x86_64").register()


def _int80_before_orig_ax(stub: Optional[EntryStub], pc: int) -> bool:
    """Whether `pc` is in the int $0x80 IDT entry before orig_ax is set: in
    asm_int80_emulation, or in int80_emulation() itself."""
    if stub is not None and stub.name == "asm_int80_emulation":
        return True
    from gdbext.kernel import symbols
    hit = symbols.table().describe(pc)
    return hit is not None and hit[0] == "int80_emulation"


def _live_compat(stub: EntryStub, regs: Dict[str, int], view) -> RawCall:
    """The i386 ABI at a compat stub: eax = nr, ebx ecx edx esi edi ebp."""
    a = abis.ABI_32
    values = [regs[X86.full_register(n)] & MASK32 for n in a.arg_regs]
    args = list(zip(a.arg_regs, values))
    call = RawCall("32", X86.nr_from_raw(a, regs["rax"]), args, stub=stub.name)
    if stub.name == "entry_SYSCALL_compat":
        # SYSCALL from 32-bit code clobbers ECX, so the vDSO passes arg 2
        # in EBP and arg 6 on the user stack (entry_64_compat.S).
        call.return_ip, call.flags = regs["rcx"] & MASK32, regs["r11"]
        arg6 = _user_u32(view, regs["rsp"] & MASK32, call.notes)
        call.args = [("ebx", values[0]), ("ebp", values[5]), ("edx", values[2]), ("esi", values[3]),
                     ("edi", values[4]), ("[esp]", arg6)]
    elif stub.name in ("asm_int80_emulation", "entry_INT80_compat"):
        from gdbext.kernel import symbols
        if regs["rip"] == symbols.lookup(stub.name):
            # The CPU pushed an IRET frame (RIP, CS, RFLAGS, RSP, SS) and
            # %rsp points at it (SDM Vol.3A 6.14.2).
            frame = view.read_kernel(regs["rsp"], 24)
            call.return_ip = int.from_bytes(frame[0:8], "little")
            call.flags = int.from_bytes(frame[16:24], "little")
        else:
            call.notes.append("past the stub's first instruction the IRET frame has moved: the return "
                              "address is in pt_regs once they are built")
    elif stub.name == "entry_SYSENTER_compat":
        # __kernel_vsyscall pushes ecx, edx, ebp and moves esp into ebp
        # before sysenter, which saves no stack pointer: ebp is the user
        # esp and argument 6 is the ebp pushed there (vdso32/system_call.S,
        # entry_64_compat.S, common.c do_fast_syscall_32).
        call.notes.append("SYSENTER saves no return address: the kernel returns to the vDSO's "
                          "__kernel_vsyscall landing pad")
        arg6 = _user_u32(view, values[5], call.notes)
        call.args = args[:5] + [("[ebp]", arg6)]
    return call


def _user_u32(view, address: int, notes) -> int:
    try:
        return _u32(view.read_user(address, 4))
    except errors.KxError:
        notes.append("argument 6 is on the user stack, which is not readable here")
        return 0


X86 = X86_64()
ARCH = X86
