"""i386: a native 32-bit x86 kernel (Debian's 686-pae): the int $0x80 and
sysenter entries, 32-bit pt_regs, 8 KiB stacks, PAE paging with 32-bit
KPTI.  What x86 shares with x86-64 (the flags, thread_info bits, the step-
over decoder, the switch decoder, the vDSO trampoline, the MSRs) comes from
gdbext.arch.x86_64; this class overrides what the 32-bit kernel does
differently."""
from typing import Dict, Optional

from gdbext import errors
from gdbext.arch.base import EntryStub, PtRegsRule, RawCall, UserFrame
from gdbext.arch.i386 import abi as abis
from gdbext.arch.i386 import user_regs
from gdbext.arch.x86_64 import X86_64, stepover
from gdbext.decoders import paging, paging_pae, x86_entry
from gdbext.decoders.control_regs import CR4_BITS_32
from gdbext.decoders.bits import MASK32
from gdbext.decoders.kaslr import PAGE_OFFSET_32
from gdbext.decoders.ptregs32 import (GDT32_ENTRIES, GDT32_SIZE, KERNEL_CS32, PT_REGS32_OFFSETS, PT_REGS32_SIZE,
                                      TSS_SEL32, USER_CS32, decode_pt_regs32, selector32_name)

GPRS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags")
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
CR0_PE, CR0_PG = 1 << 0, 1 << 31   # SDM Vol.3A 2.5
CR4_PAE = 1 << 5
EFER_LMA = 1 << 10
PTI_USER_PDPT = 1 << 12            # PTI_SWITCH_MASK (entry_32.S): the user PDPT's page
USER_PDPTES = 3                    # 3G/1G split (CONFIG_VMSPLIT_3G): PDPTEs 0-2 map user space
AUDIT_ARCH_I386 = 0x40000003       # include/uapi/linux/audit.h


class I386(X86_64):
    name = "i386"
    gdb_names = ("i386", "i386:intel")
    elf_machine = "EM_386"
    # The slid image is everything above PAGE_OFFSET: on i386 the kernel
    # image is part of the direct map (arch/x86/include/asm/page_32_types.h).
    kaslr_image_start = PAGE_OFFSET_32
    pc = "eip"
    sp = "esp"
    general_regs = GPRS + SEGMENTS
    system_regs = ("fs_base", "gs_base", "cr0", "cr2", "cr3", "cr4", "efer")
    abis = abis.ABIS
    pointer_size = 4
    pt_regs_size = PT_REGS32_SIZE
    pt_regs_offsets = PT_REGS32_OFFSETS
    kernel_space_start = 0xC0000000          # PAGE_OFFSET (CONFIG_VMSPLIT_3G)
    default_thread_size = 8 * 1024           # THREAD_SIZE_ORDER 1 (asm/page_32_types.h)
    other_entry_prefixes = ("asm_exc_", "asm_sysvec_", "asm_common_interrupt", "asm_spurious_interrupt",
                            "handle_exception", "common_interrupt")
    user_space_end = 0xC0000000              # TASK_SIZE = PAGE_OFFSET
    kernel_mode_name = "32-bit protected mode with PAE paging"
    user_modes = user_regs.USER_MODES
    flags_register = "eflags"
    pt_regs_return = ("pt_regs->ip", "pt_regs->flags")
    pt_regs_gdb_names = user_regs.GDB_NAMES

    gdt_entries = GDT32_SIZE
    gdt_slot_names = GDT32_ENTRIES
    gdt_long_mode = False                    # 8-byte TSS and LDT descriptors
    idt_gate_size = 8                        # SDM Vol.3A 6.11
    tss_selector = TSS_SEL32
    kernel_cs = KERNEL_CS32
    # CPU_ENTRY_AREA_RO_IDT on 686-pae 6.1: CPU_ENTRY_AREA_BASE follows the
    # fixmap's size (asm/pgtable_32_areas.h); this build's, as IDTR shows it.
    cea_ro_idt = 0xFF400000
    # Where the image is linked (the symbol file built from kallsyms goes
    # there): PAGE_OFFSET + CONFIG_PHYSICAL_START, 16 MiB on Debian's 686-pae.
    kernel_link_text = PAGE_OFFSET_32 + 0x1000000
    selector_names = {index * 8: name for index, name in GDT32_ENTRIES.items()}
    cr4_bits = CR4_BITS_32
    # CR8 exists in 64-bit mode only (SDM Vol.3A 2.5); QEMU's gdbstub
    # shows its copy of the APIC's task priority anyway.
    cr8_note = "not architectural in 32-bit mode (SDM Vol.3A 2.5): QEMU's copy of the APIC task priority"

    def selector_name(self, selector: int):
        return selector32_name(selector)

    @property
    def module_area(self):
        # MODULES_VADDR = VMALLOC_START, which follows high_memory
        # (asm/pgtable_32_areas.h): read from the kernel (arch/i386/layout32.py);
        # the kernel's gigabyte while it cannot be read (or the trace loop
        # owns the connection).
        from gdbext import machine
        if not machine.loop_owns_connection:
            from gdbext.arch.i386 import layout32
            try:
                return layout32.areas()["modules"]
            except Exception:    # naming an address must never fail on this
                pass
        return (self.kernel_space_start, 0xFFFFF000)

    def cr3_view(self, cr3: int, cr4: int, cpu: int) -> Dict:
        # PAE: CR3[31:5] is the PDPT (SDM Vol.3A 4.4.1); 32-bit PTI keeps
        # the user PDPT in the page after the kernel's (PTI_SWITCH_MASK).
        from gdbext.arch.x86_64 import control
        pti = control.pti_enabled(cpu)
        kernel, user = cr3 & ~PTI_USER_PDPT, cr3 | PTI_USER_PDPT
        out = {"value": cr3, "pgd": paging_pae.pdpt_address(cr3), "root_name": "PDPT", "pcide": False,
               "pti": pti, "view": None, "kernel_cr3": None, "user_cr3": None, "kernel_pgd": None, "user_pgd": None}
        if pti:
            out.update(view="user" if cr3 & PTI_USER_PDPT else "kernel", kernel_cr3=kernel, user_cr3=user,
                       kernel_pgd=paging_pae.pdpt_address(kernel), user_pgd=paging_pae.pdpt_address(user))
        elif pti is False:
            out.update(view="only", kernel_pgd=out["pgd"])
        return out

    def top_of_stack_padding(self, lookup) -> int:
        # TOP_OF_KERNEL_STACK_PADDING (asm/thread_info.h): 8 on x86-32
        # without CONFIG_VM86 (16 with it, for the vm86 segment slots).
        return 16 if lookup("save_v86_state") is not None else 8

    # -- ABIs -------------------------------------------------------------
    # No x32 bit and no 64-bit numbers here: the plain Arch rules, past
    # X86_64's overrides.
    def split_nr(self, abi, nr):
        return super(X86_64, self).split_nr(abi, nr)

    def nr_from_raw(self, abi, raw: int) -> int:
        return super(X86_64, self).nr_from_raw(abi, raw)

    def user_abi(self, mode: str):
        return abis.ABI_I386

    def full_register(self, name: str) -> str:
        return name

    # -- the machine's state ------------------------------------------------
    def current_task_pointer(self, cpu: int) -> int:
        # 6.1's x86-32 keeps `current_task` per-cpu (asm/current.h), found
        # through __per_cpu_offset like every per-cpu variable (Arch's
        # rule; X86_64's pcpu_hot lookup is for 6.2+ x86-64).
        return super(X86_64, self).current_task_pointer(cpu)

    def cpu_stack_top(self, cpu: int) -> Optional[int]:
        # 6.1 keeps the task's stack top in the TSS's sp1 on x86-32
        # (update_task_stack(), asm/switch_to.h); sp0 is the entry stack.
        from gdbext.arch.i386 import cpustate32
        return cpustate32.task_stack_top(cpu)

    def entry_stack_top(self, cpu: int) -> int:
        from gdbext.arch.i386 import cpustate32
        return cpustate32.tss(cpu).sp[0]

    def decode_pt_regs(self, raw: bytes):
        return decode_pt_regs32(raw)

    def pt_regs_plausible(self, pt) -> bool:
        return pt.cs in (KERNEL_CS32, USER_CS32)

    def user_regs_report(self, pt):
        return user_regs.report(pt)

    def user_regs_rows(self, data):
        return user_regs.rows(data)

    def entry_user_frame(self, stub, offset, code, regs, read) -> Optional[UserFrame]:
        if stub.name == "entry_SYSENTER_32":
            # ebp holds the user esp everywhere in the stub up to its call
            # into do_SYSENTER_32, which copies it to pt_regs->sp.
            calls = self.direct_calls(code, 0)
            if calls and offset > calls[0][0]:
                return None
            from gdbext import machine
            from gdbext.arch.i386 import vsyscall
            return vsyscall.sysenter_frame(regs, machine.unwinding_cpu(), read)
        if stub.name != "entry_INT80_32" or offset > x86_entry.stack_untouched(code):
            return None
        # The gate pushed SS, ESP, EFLAGS, CS, EIP on the entry stack and
        # %esp points at EIP (SDM Vol.3A 6.12.1).
        frame = read(regs["esp"], 20)
        eip, cs, flags, sp, ss = (int.from_bytes(frame[i:i + 4], "little") for i in range(0, 20, 4))
        user = dict(regs, eip=eip, cs=cs, eflags=flags, esp=sp, ss=ss)
        return UserFrame(user, "32", "the IRET frame")

    def user_regs_from_pt_regs(self, entry, saved, read):
        if entry != "entry_SYSENTER_32" or (saved["eip"] and saved["esp"]):
            return saved
        # Placeholders until do_SYSENTER_32 sets regs->sp = regs->bp and
        # do_fast_syscall_32 regs->ip = the landing pad (common.c).
        from gdbext import machine
        from gdbext.arch.i386 import vsyscall
        try:
            pad = saved["eip"] or vsyscall.kernel_landing_pad(machine.unwinding_cpu(), read)
        except errors.KxError:
            return saved
        return dict(saved, eip=pad, esp=saved["esp"] or saved["ebp"], eflags=saved["eflags"] | vsyscall.EFLAGS_IF)

    def user_frame_caller(self, regs, read) -> Optional[UserFrame]:
        from gdbext.arch.i386 import vsyscall
        return vsyscall.caller_frame(regs, read)

    # entry_SYSENTER_32's stub up to its call (at +147 in 6.1's 686-pae).
    entry_code_size = 192

    def pt_regs_pending(self, stub: EntryStub, regs: Dict[str, int], stack: int, pt_regs: int) -> bool:
        return not (stack <= regs["esp"] <= pt_regs)

    def live_call(self, stub: EntryStub, regs: Dict[str, int], view) -> RawCall:
        return user_regs.live_call(self, stub, regs, view)

    def call_from_pt_regs(self, pt, stub: Optional[EntryStub], pc: int, task: Dict) -> RawCall:
        if pt.orig_ax < 0:
            raise errors.KxError("it is not in a system call: pt_regs.orig_ax is -1 "
                                 "(an interrupt or exception entry)")
        a = abis.ABI_I386
        args = [(hw, getattr(pt, f) & MASK32) for hw, f in zip(a.arg_regs, a.ptregs_args)]
        return RawCall(a.name, self.nr_from_raw(a, pt.orig_ax), args, pt.ip, pt.flags, [],
                       stub.name if stub else None)

    def seccomp_arch(self, abi: str) -> Optional[int]:
        return AUDIT_ARCH_I386 if abi == "32" else None

    def direct_calls(self, code: bytes, start: int):
        return [(at, target & MASK32, after) for at, target, after in super().direct_calls(code, start)]

    # -- tracing --------------------------------------------------------------
    trace_registers = ("eax", "esp", "cs")
    c_entry_return_slot = "esp"

    def c_entry_pt_regs_rule(self, function: str) -> PtRegsRule:
        # The kernel is built with -mregparm=3 (arch/x86/Makefile): the
        # first argument, struct pt_regs *, is in eax.
        return PtRegsRule("eax")

    def pt_regs_after_c_call_rule(self) -> PtRegsRule:
        # entry_32.S: `movl %esp, %eax; call do_int80_syscall_32`; %esp
        # stays at pt_regs until RESTORE_REGS.
        return PtRegsRule("esp")

    def return_address_at_c_entry(self, regs, read) -> int:
        return int.from_bytes(read(regs["esp"], 4), "little")

    def plan_resume(self, address: int, code: bytes):
        return stepover.plan_resume(address, code, bits=32)

    def emulate(self, plan, regs: Dict[str, int]):
        return stepover.emulate(plan, regs, bits=32)

    def gdb_register_layout(self):
        return dict(user_regs.QEMU_G_LAYOUT)

    # -- memory -----------------------------------------------------------------
    def paging_off(self, regs: Dict[str, int]) -> Optional[str]:
        if regs.get("cr0") is not None and not regs["cr0"] & CR0_PG:
            return (f"runs with paging off (CR0={regs['cr0']:#x}): the kernel has not set up its "
                    "page tables yet (early boot)")
        if regs.get("cr4") is not None and not regs["cr4"] & CR4_PAE:
            return f"runs without PAE (CR4={regs['cr4']:#x}): the kernel has not enabled it yet (early boot)"
        return None

    def kernel_mode_ready(self, regs: Dict[str, int]) -> bool:
        # Protected mode with PAE paging, as every C path of a 686-pae
        # kernel runs (SDM Vol.3A 4.1.1); not at the reset vector.
        cr0, cr4 = regs.get("cr0") or 0, regs.get("cr4") or 0
        return bool(cr0 & CR0_PE and cr0 & CR0_PG and cr4 & CR4_PAE and not (regs.get("efer") or 0) & EFER_LMA)

    def la57(self, regs: Dict[str, int]) -> bool:
        return False

    def translate(self, address, regs, read_phys_u64, root=None):
        cr3 = regs["cr3"] if root is None else root
        return paging_pae.translate(address & MASK32, cr3, read_phys_u64)

    def root_address(self, root: int) -> int:
        return paging_pae.pdpt_address(root)

    def page_table_views(self, root, regs, cpu):
        kernel = self._kernel_half(root)
        if kernel is not None:
            return [("user", root), ("kernel", kernel)]
        from gdbext.arch.x86_64 import control
        if control.pti_enabled(cpu):
            return [("kernel", root), ("user", root | PTI_USER_PDPT)]
        return [("current", root)]

    def describe_walk(self, address, regs, translation=None, fault=None):
        steps = translation.levels if translation is not None else getattr(fault, "steps", [])
        page_fault = fault if isinstance(fault, paging.PageFault) else None
        return paging_pae.describe_walk(address & MASK32, steps, translation, page_fault)

    def kernel_page_table(self, regs, read_phys_u64) -> int:
        cr3 = regs["cr3"]
        if not cr3 & PTI_USER_PDPT:
            return cr3
        # 32-bit PTI (entry_32.S SWITCH_TO_USER_CR3) sets bit 12: the user
        # PDPT is the page after the kernel's, and native_set_pud() writes
        # each user PDPTE to both (pti_set_user_pgtbl()).  The CPU may set
        # the accessed bit in one copy only: the tables they point at count.
        kernel = cr3 & ~PTI_USER_PDPT
        user_base, kernel_base = paging_pae.pdpt_address(cr3), paging_pae.pdpt_address(kernel)
        same = all(read_phys_u64(user_base + 8 * i) & paging.PHYS_ADDR_MASK
                   == read_phys_u64(kernel_base + 8 * i) & paging.PHYS_ADDR_MASK for i in range(USER_PDPTES))
        return kernel if same else cr3

    def _kernel_half(self, root: int) -> Optional[int]:
        return root & ~PTI_USER_PDPT if root & PTI_USER_PDPT else None

    # -- KASLR ----------------------------------------------------------------------
    def kaslr_readings(self, table, cpu: int, inject: bool):
        from gdbext.arch.i386 import cpustate32
        return cpustate32.kaslr_readings(table, cpu, inject)

    def kaslr_memory_layout(self, slide: int, warnings):
        from gdbext.arch.i386 import layout32
        return layout32.memory_layout(warnings)

    def kaslr_layout_rows(self, data):
        from gdbext.arch.i386 import layout32
        return layout32.layout_rows(data)

    # -- the vDSO -------------------------------------------------------------------
    vdso_images = (("vdso_image_32", "32", "32-bit"), ("vdso32_image", "32", "32-bit"))

    def page_address(self, page, read):
        # FLATMEM (Debian's 686-pae): pfn = page - mem_map; only lowmem has a
        # direct-map address, PAGE_OFFSET + pfn * 4 KiB (asm/page_32.h).
        from gdbext.decoders.kaslr import PAGE_OFFSET_32
        from gdbext.kernel import symbols, types
        mem_map, max_low = symbols.lookup("mem_map"), symbols.lookup("max_low_pfn")
        if mem_map is None or max_low is None:
            return None
        first, size = int.from_bytes(read(mem_map, 4), "little"), types.sizeof("struct page")
        pfn, rest = divmod(page - first, size)
        if page < first or rest or pfn >= int.from_bytes(read(max_low, 4), "little"):
            return None
        return PAGE_OFFSET_32 + pfn * 4096

    def vdso_report(self, vdso, cpu: int):
        from gdbext.arch.x86_64 import vdso as x86_vdso
        return {"kernel_vsyscall": x86_vdso.trampoline(vdso, cpu)}

    def vdso_text(self, data):
        from gdbext.arch.x86_64 import vdso as x86_vdso
        return x86_vdso.trampoline_text(data.get("kernel_vsyscall"))

    # -- commands -------------------------------------------------------------------
    def read_msrs(self, cpu, names=None):
        from gdbext.arch.i386 import cpustate32
        return cpustate32.msrs(cpu, names)

    def read_tss(self, cpu):
        from gdbext.arch.i386 import cpustate32
        return cpustate32.tss(cpu)

    def register_commands(self) -> None:
        import importlib
        importlib.import_module("gdbext.commands.x86_64").register()


ARCH = I386()
