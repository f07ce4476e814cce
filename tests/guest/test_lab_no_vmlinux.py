# SPDX-License-Identifier: GPL-2.0-or-later
"""The lab with no vmlinux, as a user with only a kernel image runs it:
`./scripts/lab demo --no-vmlinux`, and `./scripts/lab boot --kernel-image
PATH --no-vmlinux` then `./scripts/lab gdb` on a copy of Debian's stripped
vmlinuz outside the lab's cache, with KASLR.

Ground truth kx never sees: System.map and the build ID of the same
build's vmlinux (the lab's cached Debian kernel), the workload's own lines
on the serial console (its pid, its openat path, its marker write), and the
KASLR slide read through QEMU's monitor (IDTR, then the vector 0 gate's
bytes) minus System.map's asm_exc_divide_error.
"""
import json
import os
import re
import shutil
import types

import pytest

from kxlab import kernels, qemu

from tests.guestlib import output_section, run_lab

from .test_kaslr import START_KERNEL_MAP
from .test_no_vmlinux import _file_build_id



def _lab(*args, timeout=900):
    return run_lab(*args, timeout=timeout)


def test_demo_without_vmlinux(kernel_series):
    out, err = _lab("demo", "--no-vmlinux", "--kernel", kernel_series)
    out += err
    kernel = kernels.cached(kernel_series)
    symbols = kernel.symbols()
    pid = int(re.search(r"workload is running: pid (\d+)", out).group(1))
    # kx kernel: the kernel's own symbols and types, the build ID of this
    # build's vmlinux file, _text where System.map has it (nokaslr).
    head = output_section(out, "(gdb) kx kernel", "(gdb) kx kaslr")
    assert "the running kernel itself (no vmlinux)" in head
    assert f"build ID {_file_build_id(kernel.vmlinux)}" in head
    assert re.search(rf"_text\s+{symbols['_text']:#x}", head), head
    # kx event at the marker write: write(1, "KX-MARK\n", 8), handler named.
    event = output_section(out, "(gdb) kx event", "(gdb) kx msr")
    assert re.search(rf'pid {pid} "kxwork" enters entry_SYSCALL_64', event), event
    assert re.search(r"\bwrite\b", event) and "KX-MARK" in event and "size_t count" in event, event
    assert re.search(rf"__x64_sys_write\s+{symbols['__x64_sys_write']:#x}", event), event
    msr = output_section(out, "(gdb) kx msr", "(gdb) kx tss")
    lstar = re.search(r"IA32_LSTAR\s+(0x[0-9a-f]+)", msr)
    assert lstar and int(lstar.group(1), 16) == symbols["entry_SYSCALL_64"], msr
    task = output_section(out, "(gdb) kx task", "(gdb) kx regs")
    assert re.search(rf'pid {pid}\s+tgid {pid}\s+"kxwork"', task), task
    # In ksys_write: pt_regs carry the marker write's arguments; plain gdb
    # on BTF types names the task.
    regs = output_section(out, "(gdb) kx regs", "(gdb) print $kx_current()->comm")
    args = re.search(r"arguments: (.*)", regs)
    assert args and re.search(r"\brdi=0x1\b", args.group(1)) and re.search(r"\brdx=0x8\b", args.group(1)), regs
    assert re.search(r'\$\d+ = "kxwork\\000', output_section(out, "(gdb) print $kx_current()->comm", "(gdb) ptype"))
    assert "unsigned long orig_ax;" in output_section(out, "(gdb) ptype struct pt_regs", "(gdb) bt")
    assert re.search(r"#0 .* in ksys_write \(\)", output_section(out, "(gdb) bt", "(gdb) kx trace"))
    assert "kx trace: 20 events" in out
    # kx ps: the idle task at init_task's System.map address, the workload.
    ps = output_section(out, "(gdb) kx ps", "== detach")
    assert re.search(rf"^\s+0\s+0 R .*{symbols['init_task']:#x}\s+\[swapper/0\]", ps, re.M), ps
    assert re.search(rf"^\s+{pid}\s+{pid} .*kxwork$", ps, re.M), ps
    assert "detached; the workload runs on" in out


def _monitor_slide(state, symbols) -> int:
    """The text slide seen by QEMU's monitor alone: the IDT's base from
    `info registers`, the vector 0 gate from `x`, minus System.map."""
    monitor = types.SimpleNamespace(monitor_path=state["monitor"])
    regs = qemu.Guest.hmp(monitor, "info registers")
    base = int(re.search(r"^IDT=\s*([0-9a-f]+)", regs, re.M).group(1), 16)
    words = re.findall(r"\b0x([0-9a-f]{16})\b", qemu.Guest.hmp(monitor, f"x /2gx {base:#x}"))
    lo, hi = (int(w, 16) for w in words[:2])
    handler = (lo & 0xFFFF) | ((lo >> 48) & 0xFFFF) << 16 | (hi & 0xFFFFFFFF) << 32
    return handler - symbols["asm_exc_divide_error"]


def _json_lines(out) -> list:
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


@pytest.mark.only_kernels("6.1")
def test_a_stripped_bzimage_brought_by_the_user(kernel_series, tmp_path):
    kernel = kernels.cached(kernel_series)
    image = tmp_path / "bzImage"
    shutil.copyfile(kernel.vmlinuz, image)     # Debian's vmlinuz: a bzImage with no symbols
    assert image.read_bytes()[0x202:0x206] == b"HdrS"
    name = f"kxtest-bzimage-{os.getpid()}"
    out, _ = _lab("boot", "--kernel-image", str(image), "--no-vmlinux", "--kaslr", "--name", name)
    try:
        state = json.loads(out)
        assert state["vmlinux"] is None and state["abi"] == kernel.abi and state["kernel"] == "custom"
        symbols = kernel.symbols()
        slide = _monitor_slide(state, symbols)
        out, err = _lab("gdb", "--name", name, "--batch", "--ex", "set kx color off",
                        "--ex", "kx kernel --json", "--ex", "kx kaslr --json", "--ex", "kx ps --json",
                        "--ex", "tbreak *entry_SYSCALL_64", "--ex", "condition $bpnum $rax == 257",
                        "--ex", "continue", "--ex", "kx event --json", "--ex", "detach", timeout=600)
        assert "booted with no vmlinux" in err
        got, kaslr, ps, event = _json_lines(out)
        serial = open(state["serial_log"]).read()
        pid = int(re.findall(r"KX-WORK pid=(\d+)", serial)[-1])
        target = re.findall(r"\btarget=(\S+)", serial)[-1]
    finally:
        _lab("stop", "--name", name)
    assert got["source"] == "guest" and got["build_id"] == _file_build_id(kernel.vmlinux)
    assert got["text"] == symbols["_text"] + slide
    assert kaslr["text_slide"] == slide and kaslr["applied"] is True
    idle = [t for t in ps["tasks"] if t["pid"] == 0]     # one per vCPU; CPU 0's is init_task
    assert symbols["init_task"] + slide in [t["address"] for t in idle], idle
    assert [t["comm"] for t in ps["tasks"] if t["pid"] == pid] == ["kxwork"] and len(ps["tasks"]) > 10
    assert (event["nr"], event["name"], event["pid"]) == (257, "openat", pid)
    assert event["args"][1]["decoded"] == f'"{target}"'
    assert [a["name"] for a in event["args"]] == ["dfd", "filename", "flags", "mode"]
    handler = symbols["__x64_sys_openat"]
    assert event["handler"]["address"] == (handler + slide if handler >= START_KERNEL_MAP else handler)
