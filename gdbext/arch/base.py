"""The contract every architecture fulfils: what is specific to a CPU or a
syscall ABI, and nothing else.

The kernel model (tasks, events, syscall tables, the trace pipeline) and the
arch-neutral commands ask `gdbext.arch.current()` for these facts; they
never test which architecture they run on.  An architecture is one
subpackage of gdbext.arch that builds an `Arch` and registers it.

Pure data (register names, the ABIs, the entry stubs) lives in dataclasses;
behaviour that differs (decoding the live registers at an entry stub,
pt_regs, the page walk, stepping over a breakpoint) is a method that the
architecture's subclass overrides.
"""
import functools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from gdbext.decoders import kaslr as kdec
from gdbext.decoders.rsp_packets import RegisterLayout
from gdbext import errors


@dataclass(frozen=True)
class EntryStub:
    """Where the CPU lands for one syscall instruction, and the C functions
    the stub calls with pt_regs (newest kernel first)."""
    name: str                          # entry_SYSCALL_64
    instruction: str                   # "syscall", "int $0x80", ...
    c_functions: Tuple[str, ...]       # do_syscall_64
    labels: Tuple[str, ...] = ()       # symbols inside the stub that name it too
    # The pt_regs member that holds the number when the C function is
    # entered, where it is not the ABI's (the C function stores it itself).
    c_nr_member: Optional[str] = None
    # A C function the stub's C function ends by calling with the same
    # pt_regs: a tracer breaks there instead, so each call is seen once.
    c_tail: Optional[str] = None
    # Where the live registers at the stub keep the user return address and
    # flags, as `kx event` names them ("rcx", "r11"; "the IRET frame").
    live_return: Tuple[str, str] = ("the entry's registers", "the entry's registers")


@dataclass(frozen=True)
class SyscallAbi:
    """One syscall ABI: which register holds the number and the arguments,
    where pt_regs keeps them, and the entry stubs that serve it."""
    name: str                          # kx's word for it: "64", "32"
    aliases: Tuple[str, ...]           # other words --abi accepts
    label: str                         # "64-bit", "i386 (compat)"
    bits: int                          # width of the number and the arguments
    nr_reg: str                        # register with the number at the instruction
    arg_regs: Tuple[str, ...]          # argument registers, in order, as named to users
    ptregs_nr: str                     # pt_regs member with the number once saved
    ptregs_args: Tuple[str, ...]       # pt_regs members with the arguments
    ptregs_ret: str                    # pt_regs member with the return value
    stubs: Tuple[EntryStub, ...]       # entry stubs, newest kernel first
    table: str                         # the kernel's table symbol (names the handlers)
    handler_prefixes: Tuple[str, ...]  # __x64_sys_, sys_
    compat_prefixes: Tuple[str, ...] = ()  # __ia32_compat_sys_, compat_sys_
    switch: Optional[str] = None       # a dispatch function that replaced the table, if any
    caller: str = ""                   # the C function(s) that dispatch, for the text
    table_label: str = ""              # "64-bit", "ia32", "x32"
    selectable: bool = True            # offered by --abi (x32 is reached through "64")
    entry_text: str = ""               # the entries, for a call whose stub is not known

    @functools.cached_property
    def mask(self) -> int:
        # Cached: a trace masks six arguments per event.
        return (1 << self.bits) - 1


@dataclass
class RawCall:
    """A syscall read off the machine, before names and types: the ABI, the
    number and the six argument values with the registers that held them."""
    abi: str
    nr: int
    args: List[Tuple[str, int]]
    return_ip: Optional[int] = None
    flags: Optional[int] = None
    notes: List[str] = field(default_factory=list)
    stub: Optional[str] = None
    source: str = "registers"          # or "pt_regs"


@dataclass
class UserFrame:
    """The user-mode context a CPU still holds inside an entry stub before
    pt_regs exist: registers by gdb's names, the mode ("64", "32") and
    where they came from, for the backtrace's label."""
    regs: Dict[str, int]
    mode: str
    source: str


@dataclass(frozen=True)
class TableChoice:
    """Which table a number indexes, once ABI-specific bits are split off
    (x86-64's x32 bit): the table's ABI, the index, and a note."""
    abi: str
    nr: int
    note: Optional[str] = None
    flagged: bool = False


@dataclass(frozen=True)
class ResumePlan:
    """How the trace loop gets a vCPU past the instruction at one of its
    breakpoints: "skip" (continue at `target`), "emulate" (apply `op`'s
    effect with the architecture's `emulate`, then continue at `target`)
    or "step" (a real single-step)."""
    kind: str
    length: int = 0
    target: Optional[int] = None   # the pc after the instruction (skip, emulate)
    op: tuple = ()                 # what `emulate` applies; the architecture's own words
    text: str = ""                 # for reports: what the instruction is


@dataclass
class SlideReadings:
    """An architecture's own evidence of the KASLR text slide, read from the
    running kernel's state (x86: the IDT's handlers, LSTAR); kernel/kaslr.py
    adds the neutral sources (the banner, the build ID) and votes."""
    sources: Dict[str, Optional[int]] = field(default_factory=dict)  # name -> slide, in report order
    notes: Dict[str, str] = field(default_factory=dict)   # name -> why it gave no slide
    candidates: List[int] = field(default_factory=list)   # further slides to look for the banner at
    report: Dict[str, object] = field(default_factory=dict)  # further `kx kaslr` JSON keys
    # Whether the running kernel's own state was read, so that a banner
    # missing at the slide it gives means another kernel (a mismatch).
    evidence: bool = False
    contradicted_by: str = "the architecture's sources"  # "...but {this} say otherwise"
    placed_by: str = "the running kernel"                 # "...at any slide {this} allows"


@dataclass(frozen=True)
class PtRegsRule:
    """Where pt_regs is at a trace point, as a rule a tracer outside gdb can
    apply to the registers it read (the kxtrace plugin): the register
    `reg`, or `alt_reg` when `reg` holds a value below `alt_below`."""
    reg: str
    alt_reg: Optional[str] = None
    alt_below: int = 0

    def apply(self, regs: Dict[str, int]) -> int:
        value = regs[self.reg]
        if self.alt_reg is not None and value < self.alt_below:
            return regs[self.alt_reg]
        return value


class Arch:
    """An architecture.  Subclasses set the data attributes and override the
    methods their CPU needs."""

    name = ""                            # "x86_64"
    gdb_names: Tuple[str, ...] = ()      # gdb's architecture names ("i386:x86-64")
    elf_machine = ""                     # pyelftools' e_machine ("EM_X86_64")
    # The dynamic relocation type a position-independent vmlinux carries in
    # .rela.dyn for its pointers (applied to every read of the file); None:
    # the vmlinux is linked at its addresses.
    relative_relocation: Optional[int] = None
    pc = "pc"                            # register names as gdb calls them
    sp = "sp"
    general_regs: Tuple[str, ...] = ()   # read per vCPU in one `g` packet
    system_regs: Tuple[str, ...] = ()
    abis: Tuple[SyscallAbi, ...] = ()
    pointer_size = 8
    kernel_space_start = 0             # lowest kernel address
    module_area = (0, 0)               # [start, end) of loadable modules' memory
    other_entry_prefixes: Tuple[str, ...] = ()  # non-syscall entry stubs that also build pt_regs
    default_thread_size = 16 * 1024    # THREAD_SIZE when no symbol tells
    user_space_end = 0                 # above the highest user address (0: not known)
    user_modes: Dict[str, str] = {}    # user_mode() word -> label ("64" -> "64-bit")
    flags_register = "flags"           # the flags register's name in text ("rflags")
    # How text names the pt_regs members with the user return address and flags.
    pt_regs_return: Tuple[str, str] = ("pt_regs", "pt_regs")
    pt_regs_gdb_names: Dict[str, str] = {}   # pt_regs member -> gdb's register (the unwinder)

    # -- ABIs -------------------------------------------------------------
    def abi(self, name: str) -> SyscallAbi:
        word = (name or self.abis[0].name).lower()
        for a in self.abis:
            if word == a.name or word in a.aliases:
                return a
        raise KeyError(name)

    def selectable_abis(self) -> List[SyscallAbi]:
        return [a for a in self.abis if a.selectable]

    def stubs(self) -> Dict[str, Tuple[SyscallAbi, EntryStub]]:
        """entry stub name (or a label inside it) -> (ABI, stub)."""
        out = {}
        for a in self.abis:
            for s in a.stubs:
                for name in (s.name,) + s.labels:
                    out.setdefault(name, (a, s))
        return out

    def split_nr(self, abi: SyscallAbi, nr: int) -> TableChoice:
        """The table and index a number selects; most ABIs: itself."""
        return TableChoice(abi.name, nr)

    def nr_from_raw(self, abi: SyscallAbi, raw: int) -> int:
        """The number as the kernel compares it, from a raw register or
        pt_regs slot (sign-extended at the ABI's width)."""
        raw &= abi.mask
        return raw - (1 << abi.bits) if raw >> (abi.bits - 1) else raw

    def ret_from_raw(self, raw: int) -> int:
        """A return value from its pt_regs slot (a signed long)."""
        bits = 8 * self.pointer_size
        raw &= (1 << bits) - 1
        return raw - (1 << bits) if raw >> (bits - 1) else raw

    def user_abi(self, mode: str) -> SyscallAbi:
        """The syscall ABI of a task whose saved registers are in user mode
        `mode` (user_mode())."""
        return self.abis[0]

    def full_register(self, name: str) -> str:
        """The register the machine layer reads for `name` (an ABI may name
        a part of one: x86's eax is rax's low half)."""
        return name

    # -- the machine's state ------------------------------------------------
    def current_task_pointer(self, cpu: int) -> int:
        """Address of `cpu`'s pointer to its current task: by default the
        per-cpu variable `current_task` (&var + __per_cpu_offset[cpu],
        kernel/percpu.py)."""
        from gdbext import errors
        from gdbext.kernel import percpu, symbols
        if symbols.lookup("current_task") is None:
            raise errors.MissingSymbol("current_task")
        return percpu.address("current_task", cpu)

    def current_task(self, cpu: int, regs: Dict[str, int], read_u64: Callable[[int], int]) -> int:
        """The address of the task running on `cpu` (whose registers are
        `regs`; read_u64 reads kernel memory): by default the pointer at
        current_task_pointer()."""
        return read_u64(self.current_task_pointer(cpu))

    def code_address(self, value: int) -> int:
        """A return address as the code it points at: without what the CPU
        adds to it (arm64's pointer-authentication code)."""
        return value

    def cpu_stack_top(self, cpu: int) -> Optional[int]:
        """The stack top the CPU itself holds for its current task, where
        the architecture keeps one (None: nothing to cross-check)."""
        return None

    def thread_flag_tables(self, version) -> Dict[str, Dict[int, str]]:
        """The architecture's thread_info bits for a kernel version, by the
        task JSON key they decode ({"ti_flags": {bit: name}, ...}), and the
        tree they come from under "tree"."""
        return {}

    def in_user_mode(self, regs: Dict[str, int]) -> bool:
        raise NotImplementedError

    def decode_pt_regs(self, raw: bytes):
        """An object with one attribute per pt_regs member."""
        raise NotImplementedError

    def user_mode(self, pt) -> str:
        """The mode saved registers `pt` return to: a key of user_modes, or
        another word when they are not a user-mode frame."""
        raise NotImplementedError

    def saved_syscall_nr(self, pt, abi: SyscallAbi, pc: Optional[int]) -> int:
        """The syscall number saved pt_regs `pt` hold for ABI `abi` (negative:
        none), given the pc of the CPU running the task (None: not running)."""
        return getattr(pt, abi.ptregs_nr)

    def pt_regs_plausible(self, pt) -> bool:
        """Whether `pt`, read where an entry stub keeps pt_regs, look like
        any frame the kernel saves (the unwinder trusts nothing else)."""
        return True

    def flag_names(self, value: int) -> List[str]:
        """The flags set in a flags-register value, by name."""
        return []

    def user_regs_report(self, pt) -> Tuple[Dict[str, object], List[str]]:
        """`kx regs`'s further JSON keys for saved user registers `pt` (x86:
        cs, ss, rflags by name) and warnings about them."""
        return {}, []

    def user_regs_rows(self, data: Dict) -> List[Tuple[str, str, Optional[str]]]:
        """The register lines of `kx regs`'s text view, from its JSON `data`:
        (name, value, note)."""
        return [(name, f"{value:#x}", None) for name, value in data["regs"].items()]

    pt_regs_size = 0
    pt_regs_offsets: Dict[str, int] = {}

    def top_of_stack_padding(self, lookup: Callable[[str], Optional[int]]) -> int:
        """Bytes between pt_regs and the top of a task's stack."""
        return 0

    def live_call(self, stub: EntryStub, regs: Dict[str, int], view) -> RawCall:
        """The call at an entry stub before pt_regs exist, from the live
        registers (and, where the ABI needs it, the stack)."""
        raise NotImplementedError

    entry_code_size = 64                 # bytes of a stub's start that entry_user_frame looks at

    def entry_user_frame(self, stub: EntryStub, offset: int, code: bytes, regs: Dict[str, int],
                         read: Callable[[int, int], bytes]) -> Optional[UserFrame]:
        """At `offset` bytes into `stub` (whose first entry_code_size bytes
        are `code`) with the registers `regs`, before pt_regs exist: the
        user-mode registers, if the CPU still holds them where this
        architecture can find them (live registers, a hardware frame that
        `read` can reach on the current page tables), else None."""
        return None

    def vector_slot_stub(self, regs: Dict[str, int]) -> Optional[EntryStub]:
        """At an exception vector's own code, before it branches to the entry
        stub and while the syscall is still in the live registers: the stub
        it leads to.  None elsewhere (and on x86, whose IDT gates are the stubs)."""
        return None

    def user_regs_from_pt_regs(self, entry: str, saved: Dict[str, int],
                               read: Callable[[int, int], bytes]) -> Dict[str, int]:
        """The user registers (gdb's names) that the pt_regs of the stub
        `entry`, read as `saved`, stand for; by default pt_regs as they are
        (i386's sysenter stores ip and sp only in C)."""
        return saved

    def user_frame_caller(self, regs: Dict[str, int], read: Callable[[int, int], bytes]) -> Optional[UserFrame]:
        """The frame a user frame the unwinder built (`regs`) returns to,
        where the architecture knows the user code's frame (i386: the
        vDSO's __kernel_vsyscall); None: that user frame is the outermost
        the kernel can vouch for."""
        return None

    def pt_regs_pending(self, stub: EntryStub, regs: Dict[str, int], stack: int, pt_regs: int) -> bool:
        """Whether, at `stub`, the syscall is still in the live registers
        rather than in the (not yet written) pt_regs on the task stack."""
        raise NotImplementedError

    def call_from_pt_regs(self, pt, stub: Optional[EntryStub], pc: int, task: Dict) -> RawCall:
        """The call saved in pt_regs; raises KxError when pt_regs do not
        hold a syscall (an interrupt or exception frame)."""
        raise NotImplementedError

    def direct_calls(self, code: bytes, start: int) -> List[Tuple[int, int, int]]:
        """[(address, target, address after it)] of the direct calls in
        `code`, which starts at `start`."""
        raise NotImplementedError

    def seccomp_arch(self, abi: str) -> Optional[int]:
        """seccomp_data.arch for a syscall of ABI `abi`: the AUDIT_ARCH_*
        value syscall_get_arch() gives (include/uapi/linux/audit.h)."""
        return None

    # -- tracing --------------------------------------------------------------
    # The registers a trace record carries (the kxtrace plugin reads them at
    # every trace point): enough for the rules below, in_user_mode and
    # return_address_at_c_entry.
    trace_registers: Tuple[str, ...] = ()
    # The register whose memory slot holds the return address at a C
    # function's first instruction (None: the address is in a register).
    c_entry_return_slot: Optional[str] = None

    def c_entry_pt_regs_rule(self, function: str) -> PtRegsRule:
        """Where pt_regs is at the first instruction of the C function an
        entry stub calls (`function`)."""
        raise NotImplementedError

    def pt_regs_after_c_call_rule(self) -> PtRegsRule:
        """Where pt_regs is in an entry stub just after its call into C
        returned (where the return value is in pt_regs)."""
        raise NotImplementedError

    def c_entry_pt_regs(self, function: str, regs: Dict[str, int]) -> int:
        """pt_regs' address at the first instruction of `function`."""
        return self.c_entry_pt_regs_rule(function).apply(regs)

    def pt_regs_after_c_call(self, regs: Dict[str, int]) -> int:
        """pt_regs' address just after a stub's call into C returned."""
        return self.pt_regs_after_c_call_rule().apply(regs)

    def return_address_at_c_entry(self, regs: Dict[str, int], read: Callable[[int, int], bytes]) -> int:
        """Where the C function just entered returns to (the caller)."""
        raise NotImplementedError

    def follows_call(self, pc: int, read: Callable[[int, int], bytes]) -> bool:
        """Whether `pc` is the return address of a direct call instruction
        (the unwinder's proof that a stub called into C)."""
        return False

    # Registers outside the gdbstub's `g` reply that read_user_in_loop needs
    # (read with `p` packets, by gdb's remote numbers).
    loop_extra_registers: Tuple[str, ...] = ()

    def page_address(self, page: int, read: Callable[[int, int], bytes]) -> Optional[int]:
        """The kernel's direct-map address of the memory that the struct
        page at `page` describes (page_address()), read through `read`; None
        where this architecture cannot say (kernel/page_cache.py)."""
        return None

    def read_user_in_loop(self, hit, address: int, size: int) -> bytes:
        """User memory of the task a trace-loop hit (machine/rsp_hit.Hit)
        stopped in: by default the stub's virtual read, which on x86 reaches
        user pages from the kernel."""
        return hit.read(address, size)

    # The `kind` of a Z0 breakpoint packet: the size of the instruction it
    # replaces (x86: 1, the int3 byte; A64: 4).
    breakpoint_kind = 1

    def plan_resume(self, address: int, code: bytes) -> ResumePlan:
        """How to get past a breakpoint at `address` (whose first bytes are
        `code`): without a single-step where the architecture can tell."""
        return ResumePlan("step")

    def emulate(self, plan: ResumePlan,
                regs: Dict[str, int]) -> Tuple[List[Tuple[str, int]], List[Tuple[int, bytes]]]:
        """The writes that have the effect of an "emulate" plan on a vCPU
        with registers `regs`: ([(register, value)], [(address, bytes)])."""
        raise NotImplementedError

    def gdb_register_layout(self) -> RegisterLayout:
        """The registers the trace loop reads from the gdbstub's `g` reply,
        as QEMU lays them out; used when gdb's own table (`maint print
        remote-registers`) cannot be read.  Names as gdb calls them."""
        raise NotImplementedError

    # -- the kernel's code -------------------------------------------------------
    def decode_syscall_switch(self, code: bytes, start: int):
        """nr -> handler as an ABI's dispatch function (SyscallAbi.switch)
        sends it, decoded from its machine code at `start`: an object with
        target(nr), default, nr_syscalls and cases(count) (see
        decoders.x86_switch.SwitchMap).  DecodeError when the code is not
        such a switch, so callers fall back to the ABI's table."""
        raise errors.DecodeError(f"kx cannot decode {self.name} dispatch code")

    # -- memory -----------------------------------------------------------------
    def translate(self, address: int, regs: Dict[str, int], read_phys_u64: Callable[[int], int],
                  root: Optional[int] = None):
        """The page walk: a decoders.paging.Translation-like result."""
        raise NotImplementedError

    page_table_root_name = "CR3"       # what the CPU calls the root register, for text

    def page_table_root(self, regs: Dict[str, int]) -> int:
        """The root the CPU walks now (x86: CR3)."""
        raise NotImplementedError

    def root_address(self, root: int) -> int:
        """The table address in a root value (x86: CR3 without PCID and
        flag bits), to compare roots."""
        return root

    def page_table_views(self, root: int, regs: Dict[str, int], cpu: int) -> List[Tuple[str, int]]:
        """[(name, root)] of the page tables that belong together with
        `root`, `root`'s own first: where the kernel keeps a user and a
        kernel copy (x86 KPTI) both, else just `root`."""
        return [("current", root)]

    def describe_walk(self, address: int, regs: Dict[str, int], translation=None, fault=None) -> Dict:
        """A finished walk (`translation`) or one stopped by `fault` as
        JSON-ready data: each level's entry and flags, the page or the fault."""
        raise NotImplementedError

    def kernel_page_table(self, regs: Dict[str, int], read_phys_u64: Callable[[int], int]) -> int:
        """The root of the kernel's page tables while `regs` may be on a
        user one (KPTI); read_phys_u64 reads the page tables."""
        raise NotImplementedError

    def paging_off(self, regs: Dict[str, int]) -> Optional[str]:
        """Why there are no page tables to walk yet (early boot), or None."""
        return None

    def kernel_mode_ready(self, regs: Dict[str, int]) -> bool:
        """Whether the CPU runs in the mode the kernel's C code runs in
        (not at the reset vector or in early boot code)."""
        return self.paging_off(regs) is None

    kernel_mode_name = "the kernel's mode"   # what kernel_mode_ready tests, for messages

    # -- KASLR ----------------------------------------------------------------------
    # Where the relocatable kernel image starts (link addresses at or above
    # it move with the text slide), and the slide's alignment and bound
    # (x86-64's, decoders/kaslr.py).
    kaslr_image_start = kdec.START_KERNEL_MAP
    kaslr_align = kdec.MIN_ALIGN
    kaslr_max_slide = kdec.MAX_SLIDE

    def kaslr_readings(self, table, cpu: int, inject: bool) -> SlideReadings:
        """The text slide as the CPU's own state says it.  `table` is the
        vmlinux's ELF symbol table (link_address(name)); `inject` allows
        sources that execute an instruction on the vCPU."""
        return SlideReadings()

    # Where the kernel's _text is linked (no KASLR): the symbol file kx
    # builds from the guest's own kallsyms is linked there, so that kx's
    # KASLR code finds each boot's slide.  None: where the guest was.
    kernel_link_text: Optional[int] = None

    def kernel_text_pointers(self, cpu: int) -> Dict[str, int]:
        """Addresses inside the running kernel's text that the CPU's own
        state gives with no symbol ({source: address}; x86: IDT handlers),
        where kx starts looking for kallsyms without a vmlinux."""
        return {}

    def kernel_data_ranges(self, cpu: int) -> List[Tuple[int, int]]:
        """[(start, end)] of the running kernel image's writable,
        non-executable memory, read from its page tables with no symbol
        (where kx looks for the kernel's pointer to VMCOREINFO); [] when
        unknown."""
        return []

    def kaslr_memory_layout(self, slide: int, warnings: List[str]) -> Dict[str, object]:
        """What `kx kaslr` adds once the slide is known (x86: the randomised
        direct map, vmalloc and vmemmap bases, phys_base): JSON keys."""
        return {}

    def kaslr_layout_rows(self, data: Dict) -> List[Tuple[str, str, Optional[str], int]]:
        """The text view of kaslr_memory_layout's keys in `data`:
        (label, value, note, label width) per line."""
        return []

    # -- the vDSO -------------------------------------------------------------------
    # (struct vdso_image symbol, the ABI it serves, how `kx vdso` names it)
    vdso_images: Tuple[Tuple[str, str, str], ...] = ()
    vdso_entry_points: Tuple[str, ...] = ()   # the functions user space calls, listed first

    def vdso_kernel_image(self, task, cpu: int):
        """The kernel's copy of the vDSO `task` has mapped, as a
        kernel.vdso.KernelImage, where the mm does not point at a struct
        vdso_image (x86-64 does: None here)."""
        return None

    def vdso_special_mappings(self, cpu: int) -> Dict[int, str]:
        """{struct vm_special_mapping address: name} of the vDSO's mappings
        beyond the generic vdso_mapping / vvar_mapping symbols."""
        return {}

    def vdso_report(self, vdso, cpu: int) -> Dict[str, object]:
        """`kx vdso`'s further keys for a task's vDSO (a kernel.vdso.TaskVdso;
        x86-64: the compat __kernel_vsyscall trampoline, the vsyscall page).
        May append to vdso.warnings."""
        return {}

    def vdso_text(self, data: Dict):
        """The text view of vdso_report's keys in `data`: a render.Text, or None."""
        return None

    # -- CPU state (gdbext.api.msrs / tss) -----------------------------------------
    def read_msrs(self, cpu: Optional[int], names: Optional[List[str]] = None):
        """The model-specific registers `names` (all kx knows for None) of
        `cpu`, decoded: an object with to_dict() (x86-64: cpu_reports.MsrReport)."""
        raise errors.NotSupported(f"MSRs are x86's; this target is {self.name}")

    def read_tss(self, cpu: Optional[int]):
        """`cpu`'s task state segment, decoded (x86-64: cpu_reports.TssReport)."""
        raise errors.NotSupported(f"the TSS is x86's; this target is {self.name}")

    # -- commands -------------------------------------------------------------------
    def register_commands(self) -> None:
        """Register this architecture's CPU-state commands (x86: msr, gdt,
        idt, tss)."""
