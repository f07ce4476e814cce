"""kx kaslr on a guest booted with `kaslr`, against independent ground truth.

Ground truth: the IDT gate 0 handler assembled by the test itself from the
raw gate bytes (IDTR from QEMU's `info registers`, the gate through gdb's
`x/2gx`) minus System.map's asm_exc_divide_error; QEMU's `gva2gpa` for the
physical load address; System.map for every symbol.
"""
import json
import re

import pytest

from tests import vmlinux_file

from .test_event import check_openat
from .test_tasks import gdb_value, workload_pid

ALIGN = 0x200000
START_KERNEL_MAP = 0xFFFFFFFF80000000


def idt_base(kx):
    m = re.search(r"^IDT=\s*([0-9a-f]+)\s", kx.cmd("monitor info registers"), re.M)
    assert m, "no IDT line in `info registers`"
    return int(m.group(1), 16)


def raw_qwords(kx, address, n):
    out = kx.cmd(f"x/{n}gx {address:#x}")
    return [int(v, 16) for v in re.findall(r"\b0x([0-9a-f]{16})\b", out.split(":", 1)[1])][:n]


def true_slide(kx):
    lo, hi = raw_qwords(kx, idt_base(kx), 2)
    handler = (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16 | (hi & 0xFFFFFFFF) << 32
    return handler - kx.symbols["asm_exc_divide_error"]


class Slid:
    """The session seen through System.map slid like the kernel image, so the
    non-KASLR checks of test_event apply unchanged."""

    def __init__(self, kx, slide):
        self._kx = kx
        self.symbols = {n: a + slide if a >= START_KERNEL_MAP else a for n, a in kx.symbols.items()}

    def __getattr__(self, name):
        return getattr(self._kx, name)


@pytest.fixture
def kk(kaslr_lab):
    kaslr_lab.ensure_stopped()
    yield kaslr_lab
    kaslr_lab.cleanup_after_test()


def test_kaslr_slide_matches_the_idt(kk):
    truth = true_slide(kk)
    if truth == 0:
        pytest.skip("KASLR chose slide 0 this boot: nothing to tell apart")
    assert truth % ALIGN == 0 and 0 < truth < 1 << 30
    d = kk.json("kx kaslr")
    assert d["text_slide"] == truth
    assert d["applied"] is True and d["match"] is True and d["gdb_slide"] == truth
    agreeing = [n for n, v in d["sources"].items() if v == truth]
    assert len(agreeing) >= 2 and sorted(agreeing) == sorted(d["agreeing"])
    assert all(v in (None, truth) for v in d["sources"].values())
    assert d["warnings"] == []
    # The relocation already happened at attach: gdb announced it.
    assert "KASLR text slide" in kk.gdb.attach_output and f"{truth:#x}" in kk.gdb.attach_output
    text = kk.cmd("kx kaslr")
    assert f"KASLR text slide: {truth:#x}" in text and "applied" in text


def test_gdb_symbols_are_relocated(kk):
    slide = true_slide(kk)
    want = kk.symbols["entry_SYSCALL_64"] + slide
    assert kk.gdb.eval("(unsigned long)&entry_SYSCALL_64") == want
    assert kk.cmd(f"info symbol {want:#x}").startswith("entry_SYSCALL_64 in section .text")
    out = kk.cmd("break do_syscall_64")
    m = re.search(r"Breakpoint \d+ at (0x[0-9a-f]+)", out)
    assert m and int(m.group(1), 16) == kk.symbols["do_syscall_64"] + slide
    # Zero-based per-cpu symbols (.data..percpu linked at 0, up to 6.14) stay
    # at their link-time offsets; from 6.15 ("x86/percpu/64: Use relative
    # percpu offsets") they are kernel addresses and slide with the rest.
    percpu = "pcpu_hot" if "pcpu_hot" in kk.symbols else "current_task"
    if vmlinux_file.section_address(kk.kernel.vmlinux, ".data..percpu") == 0:
        assert kk.symbols[percpu] < START_KERNEL_MAP
        assert kk.gdb.eval(f"(unsigned long)&{percpu}") == kk.symbols[percpu]
    else:
        assert kk.symbols[percpu] >= START_KERNEL_MAP
        assert kk.gdb.eval(f"(unsigned long)&{percpu}") == kk.symbols[percpu] + slide


def test_event_decodes_openat_as_without_kaslr(kk):
    slide = true_slide(kk)
    kk.run_to("entry_SYSCALL_64", condition="$rax == 257")
    assert kk.reg("pc") == kk.symbols["entry_SYSCALL_64"] + slide
    d = kk.json("kx event")
    assert d["entry"] == "entry_SYSCALL_64"
    check_openat(Slid(kk, slide), d)
    assert d["handler"]["address"] == kk.symbols["__x64_sys_openat"] + slide


def test_task_and_ps_work_with_kaslr(kk):
    """Per-cpu and task reads after the relocation, against gdb's own reads
    of the relocated symbols and the workload's pid from the console."""
    kk.run_to("do_syscall_64")
    cpu = kk.gdb.eval("$_thread") - 1
    t = kk.json("kx task")
    # current, read by gdb through the (relocated) per-cpu symbols.
    assert t["address"] == gdb_value(kk, "$kx_current()") == runqueue_curr(kk, cpu)
    ps = kk.json("kx ps")
    assert len(ps["tasks"]) == gdb_value(kk, "nr_threads") + 1 + (2 - 1)
    pid = workload_pid(kk)
    assert [p["comm"] for p in ps["tasks"] if p["pid"] == pid] == ["kxwork"]
    w = kk.json(f"kx task {pid}")
    assert w["comm"] == "kxwork" and w["pid"] == pid
    idt = kk.json("kx idt 0")
    assert idt["gates"][0]["symbol"] == "asm_exc_divide_error"


def runqueue_curr(kx, cpu):
    """runqueues[cpu].curr as gdb computes it from the relocated symbols."""
    return gdb_value(kx, f"((struct rq *)((char *)&runqueues + __per_cpu_offset[{cpu}]))->curr")


def test_physical_and_memory_layout(kk):
    slide = true_slide(kk)
    kk.run_to("do_syscall_64")  # kernel page tables: `gva2gpa` can see _text
    d = kk.json("kx kaslr")
    text = kk.symbols["_text"] + slide
    assert d["text"] == text
    m = re.search(r"gpa:\s*(0x[0-9a-f]+)", kk.cmd(f"monitor gva2gpa {text:#x}"))
    assert m, "QEMU could not translate _text"
    assert d["physical_load"] == int(m.group(1), 16) == d["physical_load_walk"]
    assert d["physical_load"] % ALIGN == 0
    for name in ("page_offset_base", "vmalloc_base", "vmemmap_base"):
        raw = raw_qwords(kk, kk.symbols[name] + slide, 1)[0]
        assert d[name] == raw, name
    # RANDOMIZE_MEMORY is on in both Debian configs; the direct map moved.
    assert d["memory_randomized"]["page_offset_base"] is True
    assert d["kernel_alignment"] == ALIGN


def test_trace_with_kaslr(kk):
    """kx trace's loop breaks at the slid do_syscall_64 and decodes the
    workload's openat exactly as without KASLR."""
    slide = true_slide(kk)
    out = kk.gdb.cmd("kx trace openat --comm kxwork --count 2 --json", timeout=120)
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    events, summary = lines[:-1], lines[-1]["summary"]
    assert summary["engine"] == "loop" and summary["events"] == 2 and not summary["interrupted"]
    for e in events:
        check_openat(Slid(kk, slide), e)
    assert "No breakpoints" in kk.cmd("info breakpoints")
    assert kk.heartbeat_continues()
