"""A vmlinux that is not the running kernel: a 6.1 guest, gdb given the
6.12 vmlinux.  Every command that depends on kernel offsets refuses with the
one mismatch warning; CPU-state commands run without symbol names and carry
it; nothing ever shows a traceback.  And on the matching lab guest: silence."""
import json

import pytest

WARNING = "the vmlinux does not match the running kernel"

# Commands that read kernel data through symbols and DWARF offsets.
OFFSET_COMMANDS = ["kx task", "kx task 1", "kx ps", "kx regs", "kx syscalls", "kx syscalls openat",
                   "kx event", "kx break openat", "kx trace --count 1"]
CPU_COMMANDS = ["kx msr", "kx gdt", "kx idt", "kx idt 0x80", "kx tss"]
FUNCTIONS = ['p $kx_current()', 'p $kx_per_cpu("runqueues", 0)', "p $kx_ptregs()"]


@pytest.fixture
def mm(mismatch_lab):
    mismatch_lab.ensure_stopped()
    yield mismatch_lab
    mismatch_lab.cleanup_after_test()


def _no_traceback(text):
    assert "Traceback" not in text and "internal error" not in text, text


def test_attach_warns_once(mm):
    attach = mm.gdb.attach_output
    assert attach.count(WARNING) == 1
    _no_traceback(attach)
    assert "/6.12." in str(mm.vmlinux) and mm.config.kernel == "6.1"


@pytest.mark.parametrize("command", OFFSET_COMMANDS)
def test_offset_commands_refuse(mm, command):
    r = mm.gdb.cmd_full(command)
    assert r["error"] is not None and WARNING in r["error"], r
    assert "\n" not in r["error"].strip()
    _no_traceback(r["error"] + r["output"] + r["log"])
    out = mm.gdb.cmd(command + " --json")
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, out
    d = json.loads(lines[0])
    assert list(d) == ["error"] and WARNING in d["error"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_refuse(mm, function):
    r = mm.gdb.cmd_full(function)
    assert r["error"] is not None and WARNING in r["error"], r
    _no_traceback(r["error"] + r["output"])


@pytest.mark.parametrize("command", CPU_COMMANDS)
def test_cpu_state_commands_carry_the_warning(mm, command):
    out = mm.cmd(command)
    _no_traceback(out)
    assert out.lstrip().startswith("WARNING: " + WARNING)
    d = mm.json(command)
    assert WARNING in d["kernel_mismatch"]
    # No symbol names from the wrong vmlinux.
    if command.startswith("kx idt"):
        assert all(g["symbol"] is None for g in d["gates"])
    if command == "kx msr":
        assert all(m["symbol"] is None for m in d["msrs"])
        assert not any("hooked" in w for w in d["warnings"])


def test_kx_kaslr_reports_the_mismatch(mm):
    d = mm.json("kx kaslr")
    assert d["match"] is False and WARNING in d["mismatch"]
    assert d["text_slide"] is None and d["applied"] is False
    assert d["sources"]["banner"] is None and d["sources"]["build_id"] is None
    text = mm.cmd("kx kaslr")
    assert "DOES NOT MATCH" in text
    _no_traceback(text)
    # gdb's own symbols were left alone (no relocation on a mismatch).
    assert mm.gdb.eval("(unsigned long)&_text") == 0xFFFFFFFF81000000


def test_matching_vmlinux_is_silent(kx):
    attach = kx.gdb.attach_output
    assert WARNING not in attach and "KASLR text slide" not in attach
    d = kx.json("kx kaslr")
    assert d["match"] is True and d["text_slide"] == 0 and d["applied"] is True
    assert d["mismatch"] is None and d["warnings"] == []
    t = kx.json("kx task")
    assert "kernel_mismatch" not in t
    assert WARNING not in kx.cmd("kx idt 0x80")
