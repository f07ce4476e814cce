"""MSR reads, best source first (measured: registers over the gdbstub,
rdmsr injection).  x86-only, and with gdbext.machine the only code that
writes to the machine:

1. the gdbstub's own registers: efer, fs_base, gs_base, k_gs_base;
2. executing `rdmsr` in the guest: TCG only, CPL 0, scheduler-locking on;
3. the value the kernel is expected to have programmed (the caller computes
   it from symbols), marked `expected`.

The injection writes `0f 32` over the instruction at $pc, sets RCX, steps
once, reads EDX:EAX, and then restores the two bytes and every register
that changed, on every path: success, gdb errors and Ctrl-C.

The step is a raw `vCont;s:p1.N` packet for that one vCPU: every other vCPU
stays stopped (as with scheduler-locking on), gdb's stop machinery never
runs (no stop output, no breakpoint re-insertion over our bytes), and gdb's
register cache is flushed afterwards.  If the stub refuses the packet, gdb's
own `stepi` under `set scheduler-locking on` is the fallback, and
scheduler-locking is put back as it was.
"""
import dataclasses

import gdb

from gdbext import arch, errors, settings
from gdbext import machine
from gdbext.machine import hooks

RDMSR = b"\x0f\x32"
STEP_ATTEMPTS = 5
HLT = 0xF4
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")


@dataclasses.dataclass(frozen=True)
class _Names:
    """The registers the injection touches, as the target's gdb names them
    (rip/rcx/rax/rdx on x86-64; eip/ecx/eax/edx on i386, where rdmsr runs
    in 32-bit protected mode the same way: SDM Vol.2B RDMSR)."""
    pc: str
    cx: str
    ax: str
    dx: str
    gprs: tuple
    mask: int

    @property
    def changed(self) -> tuple:     # what the injection and its step change
        return (self.pc, self.cx, self.ax, self.dx, "eflags")


def _names() -> _Names:
    a = arch.current()
    gprs = tuple(r for r in a.general_regs if r not in SEGMENTS)
    return _Names(a.pc, a.full_register("ecx"), a.full_register("eax"), a.full_register("edx"), gprs,
                  (1 << (8 * a.pointer_size)) - 1)

# MSR index -> gdbstub register name (QEMU target/i386/gdbstub.c)
GDBSTUB_MSRS = {0xC0000080: "efer", 0xC0000100: "fs_base", 0xC0000101: "gs_base",
                0xC0000102: "k_gs_base"}


@dataclasses.dataclass
class MsrReading:
    index: int
    value: int = None
    source: str = None     # gdbstub | rdmsr | expected | None
    note: str = None


def injection_refusal(cpu: int):
    """Why rdmsr can't be injected on `cpu` now, or None if it can."""
    if settings.get("msr-read") == "off":
        return "MSR injection is off (`set kx msr-read inject` enables it)"
    if not machine.is_qemu():
        return "rdmsr injection needs QEMU's gdbstub"
    if machine.is_kvm():
        return "rdmsr injection is refused under KVM (stepping an injected instruction is not reliable there)"
    regs = machine.registers(cpu)
    if regs["cs"] is None or regs["cs"] & 3:
        return f"CPU {cpu} is in user mode (CPL {regs['cs'] & 3 if regs['cs'] is not None else '?'}): rdmsr would fault"
    # Outside long mode with paging (reset vector, real mode, the
    # decompressor's early 32-bit code) gdb's $pc is not the address the CPU
    # fetches from (CS base + IP), so the bytes would land elsewhere and the
    # step would run the real instruction (at reset: a far jmp that changes
    # CS's hidden base, which gdb cannot put back).
    if not arch.current().kernel_mode_ready(regs):
        return (f"CPU {cpu} is not in {arch.current().kernel_mode_name} (early boot: CR0={regs.get('cr0') or 0:#x},"
                f" EFER={regs.get('efer') or 0:#x}): rdmsr is not injected there")
    try:
        before, at = machine.read(regs[arch.current().pc] - 1, 2, cpu)
    except errors.MemoryUnreadable:
        return f"CPU {cpu}: the code at $pc is not readable"
    if machine.monitor_cpu_state(cpu).get("ii"):
        # Right after sti or mov ss (native_safe_halt is `sti; hlt`) the CPU
        # holds interrupts off for one instruction (SDM Vol.3A 6.8.3); a
        # step would use up that shadow, which gdb cannot put back.
        return f"CPU {cpu} is in an interrupt shadow (just after sti): rdmsr is not injected there"
    if machine.cpu_halted(cpu) or HLT in (before, at):
        # A halted vCPU does not execute a single-step (QEMU steps with IRQs
        # masked), so stepi would never return.
        return f"CPU {cpu} is halted (idle in hlt); stop it at a breakpoint to read MSRs"
    return None


def _set_reg(name: str, value: int) -> None:
    gdb.execute(f"set var ${name} = {value:#x}", to_string=True)


def _flush_register_cache() -> None:
    gdb.execute("maintenance flush register-cache", to_string=True)


def _raw_step(cpu: int) -> bool:
    """Single-step vCPU `cpu` alone with a raw packet; False if refused."""
    # Make gdb select this thread on the stub (Hg) before the step, so gdb's
    # idea of the stub's current thread stays true afterwards.
    gdb.newest_frame().read_register(arch.current().pc)
    reply = machine.packet(f"vCont;s:p1.{cpu + 1:x}")
    _flush_register_cache()
    return reply[:1] in ("T", "S")


def _gdb_step() -> None:
    saved_lock = gdb.parameter("scheduler-locking")
    try:
        gdb.execute("set scheduler-locking on", to_string=True)
        gdb.execute("stepi", to_string=True)
    finally:
        gdb.execute(f"set scheduler-locking {saved_lock}", to_string=True)


def inject_rdmsr(cpu: int, indices) -> dict:
    """{index: value} by executing rdmsr on `cpu`.  Raises NotSupported when refused."""
    why = injection_refusal(cpu)
    if why:
        raise errors.NotSupported(why)
    values, n = {}, _names()
    # The step's stop is kx's own: the stop hooks leave it alone.
    with machine.on_cpu(cpu), hooks.kx_activity(hooks.STEP):
        saved_regs = dict(machine.registers(cpu))
        pc = saved_regs[n.pc]
        saved_code = machine.read(pc, len(RDMSR), cpu)
        saved_lock = gdb.parameter("scheduler-locking")
        raw = True
        try:
            machine.write(pc, RDMSR, cpu)
            for index in indices:
                _set_reg(n.pc, pc)
                _set_reg(n.cx, index)
                # Now and then QEMU answers a single-step with a stop reply
                # before the instruction has run ($pc unchanged; seen about
                # once in 20 runs on both kernels).  Nothing ran, so stepping
                # again is safe.
                for _attempt in range(STEP_ATTEMPTS):
                    if not (raw and _raw_step(cpu)):
                        raw = False
                        _gdb_step()
                    frame = gdb.newest_frame()
                    new_pc = int(frame.read_register(n.pc)) & n.mask
                    if new_pc != pc:
                        break
                if new_pc == pc:
                    raise errors.KxError(f"CPU {cpu} did not execute the injected rdmsr "
                                         f"after {STEP_ATTEMPTS} single-steps")
                if new_pc != pc + len(RDMSR):
                    values[index] = None  # #GP: the MSR does not exist here
                    continue
                eax = int(frame.read_register(n.ax)) & 0xFFFFFFFF
                edx = int(frame.read_register(n.dx)) & 0xFFFFFFFF
                values[index] = (edx << 32) | eax
        finally:
            _restore(cpu, pc, saved_code, saved_regs, saved_lock)
    return values


def _restore(cpu, pc, saved_code, saved_regs, saved_lock):
    """Put back the code bytes, every changed register and scheduler-locking.
    Each step is retried once if a Ctrl-C lands in the middle of it."""
    interrupted = False
    failures = []

    def run(step):
        nonlocal interrupted
        for attempt in range(3):
            try:
                return step()
            except KeyboardInterrupt:
                interrupted = True
            except gdb.error as exc:
                if attempt == 2:
                    failures.append(str(exc))
        return None

    # A Ctrl-C can cut the raw step short after QEMU executed it but before
    # gdb's register cache was flushed: the cache would still show the old
    # $pc and the restore would skip it.  Flush first, and always put back
    # what the injection itself changes (rip, rcx, rax, rdx), stale or not.
    run(_flush_register_cache)
    machine.invalidate()
    now = run(lambda: machine.registers(cpu)) or {}
    run(lambda: machine.write(pc, saved_code, cpu))
    n = _names()
    for name in n.gprs:
        if saved_regs.get(name) is None:
            continue
        if name in n.changed or now.get(name) != saved_regs.get(name):
            run(lambda n=name: _set_reg(n, saved_regs[n]))
    run(lambda: gdb.execute(f"set scheduler-locking {saved_lock}", to_string=True))
    run(_flush_register_cache)
    machine.invalidate()
    after = machine.registers(cpu)
    changed = [r for r in n.gprs if after.get(r) != saved_regs.get(r)]
    if machine.read(pc, len(saved_code), cpu) != saved_code:
        changed.append(f"code bytes at {pc:#x}")
    if changed or failures:
        raise errors.KxError("MSR injection could not restore the guest: "
                             + ", ".join(changed + failures) + " -- the guest state is modified!")
    if interrupted:
        raise KeyboardInterrupt


def read_msrs(cpu: int, indices, expected=None):
    """Read each MSR from the best source.  `expected(index)` gives the value
    the kernel should have programmed (or None).  Returns (readings, warnings)."""
    cpu = machine.check_cpu(cpu)
    regs = machine.registers(cpu)
    readings = {i: MsrReading(i) for i in indices}
    warnings = []
    need = []
    for index in indices:
        reg = GDBSTUB_MSRS.get(index)
        if reg and regs.get(reg) is not None:
            readings[index].value, readings[index].source = regs[reg], "gdbstub"
        else:
            need.append(index)
    if need:
        why = injection_refusal(cpu)
        if why is None:
            for index, value in inject_rdmsr(cpu, need).items():
                if value is not None:
                    readings[index].value, readings[index].source = value, "rdmsr"
                else:
                    readings[index].note = "rdmsr raised #GP"
        else:
            warnings.append(f"{why}; showing the values the kernel is expected to have programmed")
        for index in need:
            r = readings[index]
            if r.source is None and expected is not None:
                value = expected(index)
                if value is not None:
                    r.value, r.source = value, "expected"
    return [readings[i] for i in indices], warnings
