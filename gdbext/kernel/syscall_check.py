"""`kx syscalls --check`: the syscall tables and dispatch switches in guest
memory against the vmlinux file.

A table entry must hold the file's value, be the start of a handler the
ABI's table may hold (SyscallAbi.handler_prefixes / compat_prefixes) and
lie inside kernel text (_stext.._etext).  Where the kernel dispatches
through a switch, the table only names the handlers: the switch's code in
memory is decoded (by the architecture) and every case compared.

check_table and check_switch are pure (the caller reads memory); check()
reads each table and switch once per stop.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

from gdbext import errors
from gdbext.kernel import syscall_tables


@dataclasses.dataclass
class Problem:
    nr: Optional[int]
    kind: str          # table-differs | unexpected-symbol | outside-text | switch-differs | switch-undecodable
    message: str
    value: Optional[int] = None
    expected: Optional[int] = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_table(abi, memory: List[int], expected: List[int], describe, in_text,
                names_at=None) -> List[Problem]:
    """Compare the table read from guest memory with the file's (both at run
    addresses).  describe(address) -> "sym+off" | None; in_text(address);
    names_at(address) -> every name starting there (default: describe's).

    An entry is a handler of this ABI if any of its names is: in 5.10 an
    argument-less syscall is one function with three names, __do_sys_getpid,
    __x64_sys_getpid and __ia32_sys_getpid (arch/x86/include/asm/
    syscall_wrapper.h: __SYS_STUB0 makes each ABI's name an __alias of
    __do_sys_NAME)."""
    spec = syscall_tables.resolve_abi(abi)
    handlers = " or ".join(p[0] + "*" for p in (spec.handler_prefixes, spec.compat_prefixes) if p)
    if names_at is None:
        def names_at(address):
            sym = describe(address)
            return [sym] if sym and "+" not in sym else []
    problems = []
    for nr, (value, want) in enumerate(zip(memory, expected)):
        sym = describe(value)
        where = f"{value:#x}" + (f" ({sym})" if sym else " (no symbol)")
        if value != want:
            problems.append(Problem(nr, "table-differs",
                                    f"entry is {where}; the vmlinux file has {want:#x} ({describe(want) or '?'})",
                                    value, want))
        if not in_text(value):
            problems.append(Problem(nr, "outside-text", f"entry {where} points outside kernel text (_stext.._etext)",
                                    value, want))
        elif not any(syscall_tables.is_expected_symbol(n, spec) for n in names_at(value)):
            problems.append(Problem(nr, "unexpected-symbol", f"entry {where} is not the start of a {handlers} handler",
                                    value, want))
    return problems


def check_switch(abi, memory_map, file_map, slide: int, count: int, describe,
                 error: Optional[str] = None) -> List[Problem]:
    """Compare the switch decoded from guest memory with the file's: every
    nr below `count`, then the default case."""
    fn = syscall_tables.resolve_abi(abi).switch
    if memory_map is None:
        return [Problem(None, "switch-undecodable",
                        f"{fn}() in guest memory does not decode as a switch ({error}): patched?")]
    problems = []
    pairs = [(nr, memory_map.target(nr), file_map.target(nr)) for nr in range(count)]
    pairs.append((None, memory_map.default, file_map.default))
    for nr, got, want in pairs:
        want += slide
        if got != want:
            label = f"nr {nr}" if nr is not None else "the default case"
            problems.append(Problem(nr, "switch-differs",
                                    f"{fn}() sends {label} to {got:#x} ({describe(got) or 'no symbol'});"
                                    f" the vmlinux file sends it to {want:#x} ({describe(want) or '?'})",
                                    got, want))
    return problems


def check(abi="64", cpu: Optional[int] = None) -> List[Problem]:
    """Compare guest memory with the vmlinux file: the table, entry by entry,
    and, where the kernel dispatches through a switch, the switch's decoded
    targets.  Reads each once (batched, cached per stop)."""
    from gdbext.kernel import symbols
    from gdbext import machine
    t = syscall_tables.table(abi)
    st = symbols.table()
    problems = []
    no_file = reference() != "vmlinux"
    if t.address is not None:
        from gdbext import arch
        from gdbext.kernel import vmlinux
        word = arch.current().pointer_size
        memory = vmlinux.read_u64s(lambda a, n: machine.read_kernel(a, n, cpu), t.address, t.nr_syscalls, word)
        # With no vmlinux the symbol file's copy came from memory: only
        # kallsyms (the handler's symbol, kernel text) is a reference.
        expected = memory if no_file else [e.handler for e in t.entries]
        problems += check_table(t.model.spec, memory, expected, st.format,
                                st.in_kernel_text, getattr(st, "names_at", None))
    if t.model.switch is not None and not no_file:
        code = machine.read_kernel(t.switch_address, t.model.switch_size, cpu)
        live, err = _live_switch(t, code)
        problems += check_switch(t.model.spec, live, t.model.switch, t.slide, t.nr_syscalls, st.format, err)
    return problems


def reference() -> str:
    """"vmlinux" when a vmlinux file is loaded, "kallsyms" when kx runs on
    the guest's own symbols (kernel/guest_session.py)."""
    from gdbext.kernel import guest_session
    return "kallsyms" if guest_session.current() is not None else "vmlinux"


def _live_switch(t, code: bytes):
    """(the switch decoded from guest memory or None, why not).  Decoding
    takes ~25 ms and the code rarely changes: the last result is kept,
    keyed by the bytes."""
    from gdbext import arch
    key = ("syscalls-live-switch", t.abi, t.switch_address)
    cache = syscall_tables.cache()
    hit = cache.get(key)
    if hit is None or hit[0] != code:
        try:
            hit = (code, arch.current().decode_syscall_switch(code, t.switch_address), None)
        except errors.DecodeError as exc:
            hit = (code, None, str(exc))
        cache[key] = hit
    return hit[1], hit[2]
