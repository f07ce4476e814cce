"""The stopped machine, as seen through QEMU's gdbstub.

This package (with an architecture's injection, arch/x86_64/msr_inject.py)
is the only code in kx that touches the target: registers per vCPU, virtual
and physical memory, the page walk, the QEMU monitor, gdb's events (hooks.py)
and its symbol file (symbol_files.py).  Everything above it asks here, so
faults, caching and restores have one home.

Facts it relies on (measured on QEMU 7.2):
- gdb thread N is vCPU N-1;
- the gdbstub exposes fs_base, gs_base, k_gs_base, cr0-cr4, cr8 and efer;
- `maint packet Qqemu.PhyMemMode:1` makes memory accesses physical;
- `monitor info registers` shows GDTR/IDTR/TR for the monitor's current CPU.
"""
import collections
import contextlib

try:
    import gdb
except ImportError:   # outside gdb: only the trace loop's raw RSP client (scripts/bench_trace.py)
    gdb = None

from gdbext import arch, errors
from gdbext.decoders import rsp_packets
from gdbext.decoders.qemu_monitor import mi_target_stream_text, parse_info_cpus, parse_info_registers
from gdbext.machine import hooks

from gdbext.decoders.bits import MASK64
from gdbext.decoders.paging import PAGE_SIZE_4K as PAGE



def register_names() -> tuple:
    """The registers kx reads per vCPU: the architecture's general and
    system registers (one `g` packet brings the general ones)."""
    a = arch.current()
    return a.general_regs + a.system_regs

# ---------------------------------------------------------------------------
# Per-stop cache: anything read from the machine is valid until it runs again
# or something writes to it.
_cache = {}
_connection = {}      # per-connection facts (QEMU? KVM?)


# gdb's events only mark the cache stale, through a builtin (deque.append)
# rather than a Python function: a Ctrl-C that arrives while gdb runs a
# Python event handler is raised inside that handler, where gdb prints
# "Python Exception <class 'KeyboardInterrupt'>" and swallows it, so the
# kx command in progress would never see it.  A builtin runs no bytecode:
# the interrupt stays pending for kx's own code (hooks.py connects it to
# gdb directly).
_stale = collections.deque(maxlen=1)


def invalidate(*_args):
    _stale.clear()
    _cache.clear()


def _check_stale() -> None:
    if _stale:
        _stale.clear()
        _cache.clear()


def _forget_connection(*_args):
    _cache.clear()
    _connection.clear()


if gdb is not None:
    hooks.connect(_stale.append, "stop", "cont", "write", "objfile")
    hooks.connect(_forget_connection, "exit", "new_inferior")


def cached(key, compute):
    _check_stale()
    try:
        return _cache[key]
    except KeyError:
        value = _cache[key] = compute()
        return value


# ---------------------------------------------------------------------------
# The target and its vCPUs

def require_stopped() -> None:
    """Raise one clear error unless a remote target is attached and stopped.
    The verdict is cached per stop: gdb.Inferior.threads() costs ~0.2 ms,
    which `kx ps` would otherwise pay per memory read."""
    _check_stale()
    if _cache.get("stopped"):
        return
    try:
        inferior = gdb.selected_inferior()
        threads = inferior.threads() if inferior.pid else ()
    except gdb.error:
        threads = ()
    if not threads or gdb.selected_thread() is None:
        raise errors.NoTarget()
    if gdb.selected_thread().is_running():
        raise errors.KxError("the target is running: interrupt it first (Ctrl-C)")
    _cache["stopped"] = True


def assume_stopped() -> None:
    """For code running inside a breakpoint's stop(): gdb still calls the
    thread running there, but its registers and memory are readable.  Drops
    the previous stop's cache too."""
    invalidate()
    _cache["stopped"] = True


def _threads_by_cpu() -> dict:
    return cached("threads", lambda: {t.num - 1: t for t in gdb.selected_inferior().threads()})


def cpus() -> list:
    require_stopped()
    return sorted(_threads_by_cpu())


def selected_cpu() -> int:
    require_stopped()
    return gdb.selected_thread().num - 1


# True while the trace loop (machine/rsp_loop.py) owns gdb's connection: gdb's register and
# memory caches are stale then, and a packet sent by gdb would interleave
# with the loop's.  Code running in the loop reads through its Hit.
loop_owns_connection = False


def _not_in_loop() -> None:
    if loop_owns_connection:
        # Not a KxError: callers that tolerate unreadable memory must not
        # swallow it.
        raise RuntimeError("the target was read through gdb while kx's trace loop owns the connection")


def check_cpu(cpu) -> int:
    """The vCPU number to use: the selected one for None, else validated."""
    _not_in_loop()
    if cpu is None:
        return selected_cpu()
    valid = cpus()
    if cpu not in valid:
        raise errors.BadArgument(f"no CPU {cpu}: this guest has CPUs {valid[0]}-{valid[-1]}")
    return cpu


@contextlib.contextmanager
def on_cpu(cpu: int):
    """Select vCPU `cpu` (gdb thread cpu+1) for the duration; restore after."""
    thread = _threads_by_cpu().get(cpu)
    if thread is None:
        raise errors.BadArgument(f"no CPU {cpu}")
    previous = gdb.selected_thread()
    if previous is not None and previous.num == thread.num:
        yield
        return
    try:
        frame = gdb.selected_frame()
    except gdb.error:
        frame = None
    thread.switch()
    try:
        yield
    finally:
        if previous is not None and previous.is_valid():
            previous.switch()
            if frame is not None and frame.is_valid():
                try:
                    frame.select()
                except gdb.error:
                    pass


def registers(cpu: int = None) -> dict:
    """register_names() for one vCPU as unsigned ints (cached per stop);
    None for a register the stub does not have."""
    cpu = check_cpu(cpu)

    def read():
        with on_cpu(cpu):
            frame = gdb.newest_frame()
            out = {}
            for name in register_names():
                try:
                    value = frame.read_register(name)
                    # gdb types i386's registers as int32_t: unsigned at their own width.
                    out[name] = int(value) & ((1 << (8 * value.type.sizeof)) - 1)
                except (gdb.error, ValueError):
                    out[name] = None
            return out
    return cached(("regs", cpu), read)


def cpu_halted(cpu: int):
    """True if QEMU reports vCPU `cpu` halted (qThreadExtraInfo says
    "CPU#n [halted ]"), False if running, None if the stub does not say."""
    cpu = check_cpu(cpu)

    def ask():
        reply = packet(f"qThreadExtraInfo,p1.{cpu + 1:x}")
        try:
            text = bytes.fromhex(reply).decode("ascii", "replace")
        except ValueError:
            return None
        if "halted" in text:
            return True
        return False if "running" in text else None
    return cached(("halted", cpu), ask)


# ---------------------------------------------------------------------------
# Memory

def read(address: int, size: int, cpu: int = None) -> bytes:
    """Virtual read through `cpu`'s current page tables, in one request."""
    cpu = check_cpu(cpu)
    address &= MASK64

    def do():
        with on_cpu(cpu):
            try:
                return gdb.selected_inferior().read_memory(address, size).tobytes()
            except gdb.MemoryError as exc:
                raise errors.MemoryUnreadable(address, size) from exc
    return cached(("vread", cpu, address, size), do)


def read_in_unwinder(address: int, size: int) -> bytes:
    """A plain virtual read on the thread gdb is unwinding.  Frame unwinders
    must not select threads or frames (that would recurse into unwinding),
    so this bypasses on_cpu() and the cache."""
    try:
        return gdb.selected_inferior().read_memory(address & MASK64, size).tobytes()
    except gdb.MemoryError as exc:
        raise errors.MemoryUnreadable(address, size) from exc


def unwinding_cpu() -> int:
    """The vCPU of the thread gdb is unwinding, for frame unwinders: no
    thread-list refresh (require_stopped's would drop the frames being
    built)."""
    return gdb.selected_thread().num - 1


def write(address: int, data: bytes, cpu: int = None) -> None:
    """Only the rdmsr injection (arch/x86_64/msr_inject.py) writes guest
    memory, and restores what it wrote."""
    with on_cpu(check_cpu(cpu)):
        try:
            gdb.selected_inferior().write_memory(address, data)
        except gdb.MemoryError as exc:
            raise errors.MemoryUnreadable(address, len(data), "cannot write") from exc
    invalidate()


def packet(text: str, from_loop: bool = False) -> str:
    """The stub's reply to the raw packet `text`, sent through gdb's `maint
    packet` ("" if gdb shows none).  While the trace loop owns the
    connection only the loop itself (`from_loop`) may send."""
    if not from_loop:
        _not_in_loop()
    connection = getattr(gdb.selected_inferior(), "connection", None)
    if hasattr(connection, "send_packet"):
        # gdb 12+: the reply as bytes.  gdb 18 no longer lets
        # gdb.execute(..., to_string=True) capture what `maint packet` prints.
        reply = connection.send_packet(text)
        return reply.decode("latin-1") if isinstance(reply, bytes) else (reply or "")
    out = gdb.execute(f"maint packet {text}", to_string=True)
    reply = rsp_packets.maint_packet_reply(out)
    return "" if reply is None else reply


@contextlib.contextmanager
def physical_mode():
    """QEMU's physical-memory mode for the gdbstub, always switched back,
    even when a Ctrl-C lands in the middle of a switch (the packet may
    have been sent before gdb noticed the signal)."""
    try:
        ok = packet("Qqemu.PhyMemMode:1") == "OK"
    except BaseException:
        _leave_physical_mode()
        raise
    if not ok:
        raise errors.NotSupported("this gdbstub cannot read physical memory (needs QEMU >= 4.1)")
    try:
        yield
    finally:
        _leave_physical_mode()


def _leave_physical_mode() -> None:
    """Switch the stub back to virtual addresses; a Ctrl-C during the switch
    is held back until the switch is done, then re-raised."""
    interrupted = False
    for _attempt in range(3):
        try:
            packet("Qqemu.PhyMemMode:0")
            break
        except KeyboardInterrupt:
            interrupted = True
        except gdb.error:
            break  # the connection is gone: nothing left to switch back
    if interrupted:
        raise KeyboardInterrupt


def read_phys_many(requests) -> list:
    """Several physical reads under one PhyMemMode switch."""
    out = [None] * len(requests)
    todo = []
    for i, (address, size) in enumerate(requests):
        _check_stale()
        hit = _cache.get(("pread", address, size))
        if hit is None:
            todo.append(i)
        else:
            out[i] = hit
    if todo:
        inferior = gdb.selected_inferior()
        with physical_mode():
            for i in todo:
                address, size = requests[i]
                try:
                    data = inferior.read_memory(address, size).tobytes()
                except gdb.MemoryError as exc:
                    raise errors.MemoryUnreadable(address, size, "physical") from exc
                _cache[("pread", address, size)] = out[i] = data
    return out


def read_phys(address: int, size: int) -> bytes:
    return read_phys_many([(address, size)])[0]


def _read_u64_phys(address: int) -> int:
    # Page-table walks read whole 4 KiB tables once per stop.
    page = address & ~(PAGE - 1)
    table = read_phys(page, PAGE)
    off = address - page
    return int.from_bytes(table[off:off + 8], "little")


def translate(address: int, cpu: int = None, root: int = None):
    """The architecture's page walk of `address` through the page tables at
    `root` (default: the ones `cpu` runs on)."""
    cpu = check_cpu(cpu)
    return arch.current().translate(address & MASK64, registers(cpu), _read_u64_phys, root)


def kernel_page_table(cpu: int = None) -> int:
    """The kernel's page-table root for `cpu`, even while it runs on a user
    one (KPTI)."""
    return arch.current().kernel_page_table(registers(cpu), _read_u64_phys)


def read_kernel(address: int, size: int, cpu: int = None) -> bytes:
    """Read kernel memory even while `cpu` runs on a user page table (KPTI:
    at the first instruction of entry_SYSCALL_64 gdb itself cannot read
    kernel data).  Tries the plain virtual read first; falls back to a walk
    of the kernel's page tables and physical reads."""
    cpu = check_cpu(cpu)
    try:
        return read(address, size, cpu)
    except errors.MemoryUnreadable:
        pass
    a = arch.current()
    regs = registers(cpu)
    off = a.paging_off(regs)
    if off:
        # No page tables to walk (reset vector, real mode, early boot code):
        # say that, not "not mapped at PML4 ...".
        raise errors.MemoryUnreadable(address, size, f"CPU {cpu} {off}")
    return _read_through(address, size, cpu, a.kernel_page_table(regs, _read_u64_phys), "the kernel page tables")


def read_user(address: int, size: int, cpu: int = None) -> bytes:
    """Memory as the task running on `cpu` sees it, through that vCPU's own
    page tables.  gdb reads virtual memory through whichever vCPU its remote
    protocol last selected (`Hg`), which newer gdbs (16.3 here) switch for
    registers but not for memory: a plain read can see another vCPU's
    process.  So kx walks `cpu`'s page tables itself and reads physically."""
    cpu = check_cpu(cpu)

    def do():
        regs = registers(cpu)
        if arch.current().paging_off(regs):
            return read(address, size, cpu)
        return _read_through(address, size, cpu, None, "this CPU's page tables")
    return cached(("uread", cpu, address, size), do)


def _read_through(address: int, size: int, cpu: int, root, what: str) -> bytes:
    """`size` bytes at `address` through the page tables at `root` (None:
    the ones `cpu` runs on), page by page, in one batch of physical reads."""
    chunks = []
    pos, end = address, address + size
    try:
        while pos < end:
            tr = translate(pos, cpu, root)
            page_end = (pos | (tr.page_size - 1)) + 1
            n = min(end, page_end) - pos
            chunks.append((tr.phys, n))
            pos += n
    except errors.DecodeError as exc:
        raise errors.MemoryUnreadable(address, size, f"not mapped in {what} ({exc})") from None
    return b"".join(read_phys_many(chunks))


def read_pages(cr3: int, address: int, size: int, cpu: int = None):
    """[(offset, phys or None, bytes or None)] page by page through the page
    tables at `cr3` (another task's, which need not be running), in one
    batch of physical reads; None for a page with no PTE (not faulted in)."""
    out = []
    wanted = []
    for off in range(0, size, PAGE):
        try:
            tr = translate(address + off, cpu, cr3)
        except errors.DecodeError:
            out.append([off, None, None])
            continue
        out.append([off, tr.phys, None])
        wanted.append((len(out) - 1, tr.phys))
    data = read_phys_many([(phys, min(PAGE, size - out[i][0])) for i, phys in wanted])
    for (i, _phys), chunk in zip(wanted, data):
        out[i][2] = chunk
    return [tuple(x) for x in out]


def read_u64(address: int, cpu: int = None) -> int:
    return int.from_bytes(read_kernel(address, 8, cpu), "little")


# ---------------------------------------------------------------------------
# QEMU, the monitor, KVM

def monitor(command: str) -> str:
    try:
        return mi_target_stream_text(gdb.execute(f"monitor {command}", to_string=True))
    except gdb.error as exc:
        raise errors.NotSupported(f"the remote has no QEMU monitor ({exc})") from None


def is_qemu() -> bool:
    """QEMU's gdbstub answers its own `qqemu.sstepbits` query
    (ENABLE=1,NOIRQ=2,NOTIMER=4); other gdbservers reply empty."""
    if "qemu" not in _connection:
        try:
            _connection["qemu"] = "ENABLE=" in packet("qqemu.sstepbits")
        except gdb.error:
            _connection["qemu"] = False
    return _connection["qemu"]


def is_kvm() -> bool:
    if "kvm" not in _connection:
        _connection["kvm"] = is_qemu() and "enabled" in monitor("info kvm")
    return _connection["kvm"]


def require_qemu(what: str) -> None:
    if not is_qemu():
        raise errors.NotSupported(f"{what} needs QEMU's gdbstub (its monitor did not answer)")


def monitor_cpu_state(cpu: int) -> dict:
    """`info registers` for exactly `cpu`: the monitor's current CPU is switched
    to it and put back, so one CPU's GDTR never pairs with another's tables."""
    cpu = check_cpu(cpu)
    require_qemu("reading GDTR/IDTR/TR")

    def read():
        current = parse_info_cpus(monitor("info cpus")).get("current", 0)
        try:
            if current != cpu:
                monitor(f"cpu {cpu}")
            return parse_info_registers(monitor("info registers"))
        finally:
            if current != cpu:
                monitor(f"cpu {current}")
    return cached(("monitor-regs", cpu), read)
