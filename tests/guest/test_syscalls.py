"""kx syscalls against independent ground truth: System.map (addresses),
the kernel's own arch/x86/entry/syscalls/syscall_{64,32}.tbl and
SYSCALL_DEFINE sources (nr -> entry point, parameter names), and gdb's own
reads and writes of guest memory.

How the kernel dispatches is read from System.map, not from the version:
with x64_sys_call (6.9+, 6.1.85+) do_syscall_64 calls a switch of direct
calls and sys_call_table only names the handlers; without it (5.10) it
calls sys_call_table[nr](regs), and ia32 has its own ia32_sys_call_table.

The lab guest: 2 vCPUs, -cpu Haswell (Intel), pti=on, Debian 5.10 / 6.1 / 6.12."""
import os
import re

import pytest

from tests import kernel_source, vmlinux_file


def source_root(kx):
    return kernel_source.source_root(kx.config.kernel)


def syscall_tbl(kx, bits):
    return kernel_source.syscall_tbl(kx.config.kernel, bits)


def define_params(kx, path, name, compat=False):
    """Parameter (type, name) pairs of SYSCALL_DEFINEn(name, ...) in a source file."""
    with open(os.path.join(source_root(kx), path)) as f:
        text = f.read()
    macro = "COMPAT_SYSCALL_DEFINE" if compat else r"(?<!COMPAT_)SYSCALL_DEFINE"
    m = re.search(macro + r"(\d)\(\s*" + re.escape(name) + r"\s*,([^)]*)\)", text)
    parts = [" ".join(p.split()) for p in m.group(2).split(",")]
    return [(parts[2 * i].replace("__user ", ""), parts[2 * i + 1]) for i in range(int(m.group(1)))]


def gdb_u64(kx, address):
    return kx.gdb.eval(f"*(unsigned long *){address:#x}")


def has_switch(kx, abi="64"):
    """Whether this kernel dispatches `abi` through a switch (System.map)."""
    return {"64": "x64_sys_call", "32": "ia32_sys_call"}[abi] in kx.symbols


def handler_that_runs(kx, nr, handlers):
    """Continue until one of `handlers` (symbols) is entered for syscall
    `nr` (their first argument is the pt_regs); return its symbol."""
    numbers = []
    for h in handlers:
        out = kx.cmd(f"break *{kx.symbols[h]:#x} if ((struct pt_regs *)$rdi)->orig_ax == {nr}")
        numbers.append(re.search(r"Breakpoint (\d+)", out).group(1))
    try:
        kx.cont()
        kx.wait_stopped()
        pc = kx.reg("pc")
    finally:
        kx.cmd("delete " + " ".join(numbers))
    (hit,) = [h for h in handlers if kx.symbols[h] == pc]
    return hit


@pytest.fixture
def at_do_syscall_64(kx):
    """Stopped in do_syscall_64: the kernel page table, so gdb itself can
    read (and write) sys_call_table and kernel text."""
    kx.run_to("do_syscall_64")
    return kx


def test_64bit_table_matches_system_map_and_tbl(kx):
    r = kx.json("kx syscalls")
    tbl = syscall_tbl(kx, "64")
    assert r["abi"] == "64"
    assert r["table"] == kx.symbols["sys_call_table"]
    assert r["nr_syscalls"] == max(tbl) + 1 == len(r["entries"])
    if has_switch(kx):
        assert r["dispatch"]["kind"] == "x64_sys_call" and r["dispatch"]["switch"] is True
        assert r["switch"] == kx.symbols["x64_sys_call"]
    else:
        assert r["dispatch"]["kind"] == "sys_call_table" and r["dispatch"]["switch"] is False
        assert r["switch"] is None and "indirect call" in r["dispatch"]["note"]
    for e in r["entries"]:
        abi_name, entry = tbl.get(e["nr"], (None, None))
        want = "__x64_" + (entry or "sys_ni_syscall")
        assert e["symbol"] == want, e
        assert e["handler"] == kx.symbols[want], e
        assert e["implemented"] == (entry is not None)
        assert e["name"] == (entry.split("sys_", 1)[1] if entry else None)
        assert e["ok"] is None                               # not checked without --check
    openat = r["entries"][257]
    assert (openat["name"], openat["symbol"], openat["handler"]) == \
        ("openat", "__x64_sys_openat", kx.symbols["__x64_sys_openat"])


def test_ia32_table_or_switch(kx):
    """With ia32_sys_call (6.1.85+) there is no ia32_sys_call_table: the map
    comes from the switch's code; 5.10 has the table and no switch.  Either
    must agree with syscall_32.tbl."""
    r = kx.json("kx syscalls --abi 32")
    tbl = syscall_tbl(kx, "32")
    assert r["abi"] == "32"
    if has_switch(kx, "32"):
        assert "ia32_sys_call_table" not in kx.symbols
        assert r["table"] is None and r["switch"] == kx.symbols["ia32_sys_call"]
    else:
        assert r["table"] == kx.symbols["ia32_sys_call_table"] and r["switch"] is None
        assert r["dispatch"]["function"] == "ia32_sys_call_table"
    assert r["nr_syscalls"] == max(tbl) + 1 == len(r["entries"])
    for e in r["entries"]:
        entry = tbl.get(e["nr"], (None, None))[1]
        want = "__ia32_" + (entry or "sys_ni_syscall")
        assert (e["symbol"], e["handler"]) == (want, kx.symbols[want]), e
        assert e["compat"] == (entry or "").startswith("compat_")
    # --abi takes the arch's words for the ABI (gdbext.arch.parse_abi).
    assert kx.json("kx syscalls 4 --abi ia32")["entries"] == kx.json("kx syscalls 4 --abi 32")["entries"]
    write = kx.json("kx syscalls 4 --abi 32")["entries"][0]
    assert (write["name"], write["symbol"], write["handler"]) == \
        ("write", "__ia32_sys_write", kx.symbols["__ia32_sys_write"])


def test_single_syscall_with_signature(kx):
    r = kx.json("kx syscalls openat")
    assert r == kx.json("kx syscalls 257")
    (e,) = r["entries"]
    assert e["nr"] == 257 and e["handler"] == kx.symbols["__x64_sys_openat"]
    sig = r["signature"]
    assert sig["source"] == "ftrace" and sig["origin"] == "__syscall_meta__openat"
    assert [(a["type"], a["name"]) for a in sig["args"]] == define_params(kx, "fs/open.c", "openat")
    # The compat openat has no ftrace metadata: its DWARF, in source order.
    c = kx.json("kx syscalls openat --abi 32")
    assert c["entries"][0]["symbol"] == "__ia32_compat_sys_openat"
    assert c["signature"]["source"] == "dwarf"
    assert [a["name"] for a in c["signature"]["args"]] == \
        [n for _, n in define_params(kx, "fs/open.c", "openat", compat=True)]
    assert kx.json("kx syscalls getpid")["signature"]["args"] == []
    text = kx.cmd("kx syscalls openat")
    assert "__x64_sys_openat" in text and "openat(int dfd, const char *filename" in text
    if has_switch(kx):
        assert "x64_sys_call" in text and "only names" in text
    else:
        assert "x64_sys_call" not in text and "sys_call_table[nr](regs), an indirect call" in text


def test_every_signature_follows_the_source(kx):
    """Parameter names and order of every implemented syscall (both ABIs)
    against the SYSCALL_DEFINE / COMPAT_SYSCALL_DEFINE in the source tree."""
    root = source_root(kx)
    out = kx.cmd("python import json; from gdbext.kernel import syscalls as S; print(json.dumps("
                 "[[abi, e.nr, e.name, e.compat, S.signature(e.nr, abi) and S.signature(e.nr, abi).as_dict(),"
                 " S.configured_out(e.nr, abi)]"
                 " for abi in ('64', '32') for e in S.table(abi).entries if e.implemented]))")
    import json
    rows = []
    for abi, nr, name, compat, sig, stub in json.loads(out):
        if sig is None:
            # Only a COND_SYSCALL stub (built without the syscall) has none.
            assert stub, (abi, nr, name)
            continue
        rows.append((abi, nr, name, compat, [a["name"] for a in sig["args"]], sig["source"]))
    defines = {}
    pattern = re.compile(r"\b(COMPAT_)?SYSCALL_DEFINE([0-6])\(\s*(\w+)\s*((?:,[^)]*)?)\)")
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".c"):
                with open(os.path.join(d, f), errors="replace") as fh:
                    text = fh.read()
                if "SYSCALL_DEFINE" not in text:
                    continue
                for m in pattern.finditer(text):
                    parts = [p.strip() for p in m.group(4).split(",")[1:]] if m.group(4) else []
                    if len(parts) == 2 * int(m.group(2)):
                        defines.setdefault((bool(m.group(1)), m.group(3)), []).append(parts[1::2])
    checked = 0
    for abi, nr, name, compat, names, source in rows:
        assert source in ("ftrace", "dwarf")
        assert source == "dwarf" if compat else source == "ftrace", (abi, nr, name, source)
        candidates = defines.get((compat, name))
        if candidates:                   # a few are defined through other macros
            assert names in candidates, (abi, nr, name, names, candidates)
            checked += 1
    assert checked > 0.8 * len(rows)


def test_gdb_reads_the_same_table(at_do_syscall_64):
    kx = at_do_syscall_64
    r = kx.json("kx syscalls")
    base = kx.symbols["sys_call_table"]
    for nr in (0, 1, 39, 257, r["nr_syscalls"] - 1):
        assert gdb_u64(kx, base + 8 * nr) == r["entries"][nr]["handler"]


def test_check_is_clean_on_a_stock_kernel(kx):
    kx.run_to("entry_SYSCALL_64")       # user CR3 under PTI: kx reads through the page walk
    with pytest.raises(Exception, match="Cannot access memory"):
        kx.cmd(f"x/gx {kx.symbols['sys_call_table']:#x}")
    for abi in ("64", "32"):
        r = kx.json(f"kx syscalls --check --abi {abi}")
        assert r["check"]["clean"] is True and r["check"]["problems"] == [], r["check"]
        assert all(e["ok"] is True for e in r["entries"])
    r = kx.json("kx syscalls --check")
    assert r["check"]["checked"] == {"table_entries": r["nr_syscalls"],
                                     "switch": "x64_sys_call" if has_switch(kx) else None}
    assert "clean" in kx.cmd("kx syscalls --check")


def test_check_flags_an_overwritten_entry(at_do_syscall_64):
    kx = at_do_syscall_64
    nr = 39                                              # getpid
    slot = kx.symbols["sys_call_table"] + 8 * nr
    original = gdb_u64(kx, slot)
    assert original == kx.symbols["__x64_sys_getpid"]
    outside = 0xFFFFFFFFC0001000                         # module space: not kernel text
    try:
        kx.cmd(f"set {{unsigned long}}{slot:#x} = {kx.symbols['__x64_sys_getppid']:#x}")
        r = kx.json("kx syscalls --check")
        assert r["check"]["clean"] is False
        bad = [e for e in r["entries"] if e["ok"] is False]
        assert [e["nr"] for e in bad] == [nr]
        kinds = {(p["nr"], p["kind"]) for p in r["check"]["problems"]}
        assert kinds == {(nr, "table-differs")}          # another real handler: only the file differs
        p = r["check"]["problems"][0]
        assert p["value"] == kx.symbols["__x64_sys_getppid"] and p["expected"] == original

        kx.cmd(f"set {{unsigned long}}{slot:#x} = {outside:#x}")
        r = kx.json(f"kx syscalls {nr} --check")
        assert r["entries"][0]["ok"] is False
        assert {p["kind"] for p in r["check"]["problems"]} == {"table-differs", "outside-text"}
        text = kx.cmd("kx syscalls --check")
        assert "WARNING" in text and f"nr {nr}" in text and "outside kernel text" in text
        # The switch is what dispatches: it is untouched, and no switch problem is reported.
        assert not any(p["kind"].startswith("switch") for p in r["check"]["problems"])
    finally:
        kx.cmd(f"set {{unsigned long}}{slot:#x} = {original:#x}")
    assert gdb_u64(kx, slot) == original
    assert kx.json("kx syscalls --check")["check"]["clean"] is True


def test_an_overwritten_entry_runs_only_without_a_switch(at_do_syscall_64):
    """Whether the table entry in memory is what runs, as kx's dispatch
    says: getpid's entry pointed at getppid's handler, the guest runs on
    until the workload's next getpid enters one of the two.  With a switch
    (6.1.85+) getpid's own handler runs; without (5.10) getppid's does,
    which is why --check compares the table there.  The entry is restored
    at once (one getpid may have answered the parent's pid)."""
    kx = at_do_syscall_64
    nr = 39
    slot = kx.symbols["sys_call_table"] + 8 * nr
    original, hook = kx.symbols["__x64_sys_getpid"], kx.symbols["__x64_sys_getppid"]
    assert gdb_u64(kx, slot) == original
    try:
        kx.cmd(f"set {{unsigned long}}{slot:#x} = {hook:#x}")
        r = kx.json(f"kx syscalls {nr} --check")
        assert {(p["nr"], p["kind"]) for p in r["check"]["problems"]} == {(nr, "table-differs")}
        assert r["dispatch"]["switch"] is has_switch(kx)
        ran = handler_that_runs(kx, nr, ["__x64_sys_getpid", "__x64_sys_getppid"])
    finally:
        kx.ensure_stopped()
        kx.cmd(f"set {{unsigned long}}{slot:#x} = {original:#x}")
    assert ran == ("__x64_sys_getpid" if r["dispatch"]["switch"] else "__x64_sys_getppid")
    assert gdb_u64(kx, slot) == original
    assert kx.json("kx syscalls --check")["check"]["clean"] is True
    assert kx.heartbeat_continues()


def test_check_flags_a_patched_dispatch(at_do_syscall_64):
    """What dispatches, patched, is flagged and restored.  With a switch
    (6.1.85+) an inline hook on x64_sys_call (a jmp over its ftrace site)
    redirects every nr; without one (5.10) each ABI dispatches through its
    own table, and here ia32_sys_call_table is patched
    (test_an_overwritten_entry_runs_only_without_a_switch does
    sys_call_table)."""
    kx = at_do_syscall_64
    if has_switch(kx):
        patch_the_switch(kx)
    else:
        patch_the_ia32_table(kx)
    assert kx.heartbeat_continues()


def patch_the_ia32_table(kx):
    nr, hook = 20, kx.symbols["__ia32_sys_getppid"]             # i386 getpid -> getppid's handler
    slot = kx.symbols["ia32_sys_call_table"] + 8 * nr
    original = gdb_u64(kx, slot)
    assert original == kx.symbols["__ia32_sys_getpid"]
    try:
        kx.cmd(f"set {{unsigned long}}{slot:#x} = {hook:#x}")
        r = kx.json("kx syscalls --check --abi 32")
        assert r["dispatch"]["function"] == "ia32_sys_call_table" and r["dispatch"]["switch"] is False
        assert [(p["nr"], p["kind"], p["value"]) for p in r["check"]["problems"]] == [(nr, "table-differs", hook)]
        assert [e["nr"] for e in r["entries"] if e["ok"] is False] == [nr]
        assert kx.json("kx syscalls --check")["check"]["clean"] is True       # the 64-bit table is its own
    finally:
        kx.cmd(f"set {{unsigned long}}{slot:#x} = {original:#x}")
    assert gdb_u64(kx, slot) == original
    assert kx.json("kx syscalls --check --abi 32")["check"]["clean"] is True


def patch_the_switch(kx):
    fn = kx.symbols["x64_sys_call"]
    head = bytes(kx.gdb.eval(f"*(unsigned char *){fn + i:#x}") for i in range(4))
    # IBT builds (6.12, 7.2) start with endbr64, which boot code on this
    # non-IBT CPU overwrote with a 4-byte NOP: 66 0f 1f 00 in 6.12, the
    # poison `nopl -42(%rax)` (0f 1f 40 d6, asm/ibt.h) in 7.2.  6.1 has no
    # endbr.  The hook goes on the instruction after it.
    site = fn + 4 if head.hex() in ("f30f1efa", "660f1f00", "0f1f40d6") else fn
    saved = [kx.gdb.eval(f"*(unsigned char *){site + i:#x}") for i in range(5)]
    # There the file has the __fentry__ call that ftrace NOPs at boot (6.1,
    # 6.12), or the switch's first instruction: 7.2 builds syscall_64.o
    # without ftrace (CFLAGS_REMOVE_syscall_64.o in arch/x86/entry/Makefile).
    in_file = vmlinux_file.read(kx.kernel.vmlinux, site, 5)
    if in_file[0] == 0xE8:
        assert saved == [0x0F, 0x1F, 0x44, 0x00, 0x00]
    else:
        assert bytes(saved) == in_file
    hook = kx.symbols["__x64_sys_getppid"]
    rel = (hook - (site + 5)) & 0xFFFFFFFF
    patch = [0xE9] + list(rel.to_bytes(4, "little"))
    try:
        for i, b in enumerate(patch):
            kx.cmd(f"set {{unsigned char}}{site + i:#x} = {b:#x}")
        r = kx.json("kx syscalls --check")
        switch = [p for p in r["check"]["problems"] if p["kind"] == "switch-differs"]
        assert len(switch) >= r["nr_syscalls"] - 1          # getppid itself still goes to getppid
        assert all(p["value"] == hook for p in switch)
        assert not any(p["kind"].startswith("table") for p in r["check"]["problems"])
    finally:
        for i, b in enumerate(saved):
            kx.cmd(f"set {{unsigned char}}{site + i:#x} = {b:#x}")
    assert [kx.gdb.eval(f"*(unsigned char *){site + i:#x}") for i in range(5)] == saved
    assert kx.json("kx syscalls --check")["check"]["clean"] is True


def test_bad_input_is_one_clear_line(kx):
    for command, needle in [("kx syscalls nosuchcall", "no syscall named 'nosuchcall'"),
                            ("kx syscalls opnat", "did you mean openat"),
                            ("kx syscalls 100000", "out of range"),
                            ("kx syscalls -1", "out of range"),
                            ("kx syscalls --abi x32", "x32"),
                            ("kx syscalls --abi arm", "--abi must be 64, 32, x32, not 'arm'"),
                            ("kx syscalls --check --cpu 9", "no CPU 9")]:
        r = kx.gdb.cmd_full(command)
        assert r["error"] and needle in r["error"], (command, r)
        assert "\n" not in r["error"].strip() and "Traceback" not in r["error"]
        j = kx.json(command)
        assert needle in j["error"], (command, j)


def test_completion_offers_syscall_names(kx):
    out = kx.cmd("complete kx syscalls opena")
    assert {"kx syscalls openat", "kx syscalls openat2"} <= set(out.split("\n"))
    assert "kx syscalls --check" in kx.cmd("complete kx syscalls --ch")
