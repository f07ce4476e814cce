"""arm64 with FEAT_LPA2: Debian's 6.12 cloud kernel (CONFIG_ARM64_VA_BITS=52,
CONFIG_ARM64_LPA2) on `-cpu max,lpa2=on` runs with 52-bit VAs, TCR_EL1.DS
= 1 and five levels from level -1.  One KASLR guest for the module.

Ground truth: QEMU's own translation (`gva2gpa` on the stopped vCPU) and
its physical reads (`xp`), System.map slid by VBAR_EL1 - `vectors`, the
kernel's config (PAGE_OFFSET = -(1 << VA_BITS), arch/arm64/include/asm/
memory.h) and its memstart_addr, and what hello64 put in x8/x0-x2.
"""
import json
import re

import pytest

from tests.guest.test_trace import run_trace
from tests.guestlib import LabConfig

from . import test_compat_vdso as compat
from .conftest import ARM64_KERNELS, Arm64Session, stopped_for_a_test
from .test_entry import HELLO64_LEN, SVC64_AT_ENTRY, SVC64_IN_C, elf_symbols
from .test_memory import monitor_bytes

pytestmark = [pytest.mark.guest,
              pytest.mark.skipif("6.12" not in ARM64_KERNELS, reason="52-bit VAs need the 6.12 kernel")]

CONFIG = LabConfig(kernel="6.12", smp=2, cpu="", pti="auto", kaslr=True, lpa2=True)


@pytest.fixture(scope="module")
def lpa2_lab():
    session = Arm64Session.get(CONFIG)
    yield session
    Arm64Session.release(CONFIG)


@pytest.fixture
def lpa2(lpa2_lab):
    yield from stopped_for_a_test(lpa2_lab)


def gva2gpa(session, cpu: int, va: int) -> int:
    """QEMU's own stage-1 translation on vCPU `cpu`."""
    session.guest.hmp(f"cpu {cpu}")
    out = session.guest.hmp(f"gva2gpa {va:#x}")
    m = re.search(r"gpa: (0x[0-9a-f]+)", out)
    assert m, out
    return int(m.group(1), 16)


def slide(session) -> int:
    return session.reg("VBAR") - session.symbols["vectors"]


def va_bits_config(session) -> int:
    text = session.kernel.config.read_text()
    return int(re.search(r"^CONFIG_ARM64_VA_BITS=(\d+)$", text, re.M).group(1))


def kx_walk(session, cpu: int, va: int) -> dict:
    view = session.json(f"kx pagewalk {va:#x} --cpu {cpu}")["views"][0]
    assert view["error"] is None and view["mapped"], view
    assert view["va_bits"] == 52 and view["lpa2"]
    assert [lv["level"] for lv in view["levels"]][0] == "L-1"
    return view


def test_tcr_and_the_kernel_root(lpa2):
    assert va_bits_config(lpa2) == 52
    d = lpa2.json("kx sysregs")
    cpu, tcr = d["cpu"], d["decoded"]["TCR_EL1"]
    assert tcr["ds"] == 1 and tcr["t1sz"] == tcr["t0sz"] == 12 and tcr["levels_kernel"][0] == "L-1"
    assert tcr["va_bits_kernel"] == va_bits_config(lpa2)
    # TTBR1 names swapper_pg_dir: QEMU's translation of its link address (slid).
    swapper = lpa2.symbols["swapper_pg_dir"] + slide(lpa2)
    assert d["decoded"]["TTBR1_EL1"]["baddr"] == gva2gpa(lpa2, cpu, swapper)
    assert d["warnings"] == [], d["warnings"]


def test_kaslr_on_the_52_bit_guest(lpa2):
    d = lpa2.json("kx kaslr")
    s = slide(lpa2)
    assert s != 0 and d.get("text_slide") == s and d.get("match") is True, d
    assert d["sources"]["vbar"] == d["sources"]["banner"] == s
    assert lpa2.gdb.eval("(unsigned long)&sys_call_table") == lpa2.symbols["sys_call_table"] + s
    assert lpa2.json("kx syscalls --check")["check"]["problems"] == []
    # The layout: PAGE_OFFSET = -(1 << CONFIG_ARM64_VA_BITS), 52 bits in use
    # (TCR_EL1.T1SZ), the kernel's own memstart_addr and kimage_voffset.
    v = d["vmcoreinfo"]
    assert d["vabits_actual"] == v["va_bits"] == va_bits_config(lpa2) == 52 and d["warnings"] == []
    assert d["page_offset"] == -(1 << va_bits_config(lpa2)) & (2**64 - 1)
    assert v["phys_offset"] == lpa2.gdb.eval("(unsigned long)memstart_addr")
    assert v["kimage_voffset"] == lpa2.gdb.eval("(unsigned long)kimage_voffset") and v["kernel_offset"] == s


def test_pagewalks_match_qemu(lpa2):
    """Kernel text, the linear map (the task_struct) and the vmap'd task
    stack against QEMU's gva2gpa; hello64's text against QEMU's physical
    read.  (gva2gpa of a user address fails at EL1: QEMU's debug
    translation honours PSTATE.PAN, which the kernel keeps set.)"""
    cpu = lpa2.stop_at("el0_svc", SVC64_IN_C)
    task = lpa2.reg("SP_EL0")
    page_offset = -(1 << va_bits_config(lpa2)) & (2**64 - 1)
    page_end = -(1 << 47) & (2**64 - 1)               # _PAGE_END(VA_BITS_MIN = 48)
    assert page_offset <= task < page_end               # a linear-map address
    stack = lpa2.gdb.eval(f"(unsigned long)((struct task_struct *){task:#x})->stack")
    assert stack >= page_end                              # CONFIG_VMAP_STACK: vmalloc space
    regs = lpa2.json("kx regs")["regs"]
    addresses = {"text": lpa2.symbols["el0_svc"] + slide(lpa2), "linear": task, "stack": stack + 0x100}
    phys = {}
    for name, va in addresses.items():
        view = kx_walk(lpa2, cpu, va)
        assert view["phys"] == gva2gpa(lpa2, cpu, va), (name, view)
        phys[name] = view["phys"]
    # The linear map is __lm_to_phys: va - PAGE_OFFSET + memstart_addr.
    assert phys["linear"] == task - page_offset + lpa2.gdb.eval("(unsigned long)memstart_addr")
    # Beyond T0SZ's 52 bits: no walk, one line (QEMU: a translation fault too).
    out = lpa2.json(f"kx pagewalk 0x0010000000000000 --cpu {cpu}")["views"][0]
    assert not out["mapped"] and out["levels"] == [] and "outside the 52-bit range" in out["error"]
    assert "Unmapped" in lpa2.guest.hmp("gva2gpa 0x0010000000000000")
    # hello64's svc #0 is the word before its return address.
    user = kx_walk(lpa2, cpu, regs["pc"])
    assert user["user"] and user["executable"] and user["active"] and user["root"] == lpa2.reg("TTBR0_EL1")
    assert monitor_bytes(lpa2, user["phys"] - 4, 4) == (0xD4000001).to_bytes(4, "little")


def test_user_walk_of_the_workloads_vdso(lpa2):
    """The workload's [vdso] (its own AT_SYSINFO_EHDR) maps the kernel's
    vDSO image: the same physical page as QEMU's translation of
    vdso_info[VDSO_ABI_AA64].vdso_code_start."""
    cpu = 0
    work = lpa2.workload_pid()
    base = int(re.findall(r"KX-WORK pid=\d+ vdso=(0x[0-9a-f]+)", lpa2.guest.serial())[-1], 16)
    d = lpa2.json(f"kx pagewalk {base:#x} --pid {work} --cpu {cpu}")
    view = d["views"][0]
    assert d["source"] == "task" and view["mapped"] and view["user"] and view["va_bits"] == 52, view
    assert [lv["level"] for lv in view["levels"]][0] == "L-1"
    image = lpa2.gdb.eval("(unsigned long)vdso_info[0].vdso_code_start")
    assert view["phys"] == gva2gpa(lpa2, cpu, image)
    assert monitor_bytes(lpa2, view["phys"], 4) == b"\x7fELF"


def test_event_task_and_ps_at_the_svc(lpa2):
    cpu = lpa2.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    d = lpa2.json("kx event")
    mon = lpa2.monitor_registers(cpu)
    assert (mon["x8"], mon["x0"], mon["x2"]) == (64, 1, HELLO64_LEN)
    assert (d["nr"], d["name"], d["comm"]) == (64, "write", "hello64")
    assert [a["value"] for a in d["args"][:3]] == [mon["x0"], mon["x1"], mon["x2"]]
    assert d["args"][1]["decoded"] == '"Hello from svc (arm64)\\n"'     # read through TTBR0, 52-bit
    assert d["handler"]["address"] == lpa2.symbols["__arm64_sys_write"] + slide(lpa2)
    lpa2.stop_at("el0_svc", SVC64_IN_C)
    t = lpa2.json("kx task")
    assert t["address"] == lpa2.reg("SP_EL0") and t["comm"] == "hello64"
    pids = {p["pid"]: p for p in lpa2.json("kx ps")["tasks"]}
    assert pids[lpa2.workload_pid()]["comm"] == "kxwork" and pids[t["pid"]]["address"] == t["address"]
    assert lpa2.json("kx regs")["regs"]["x8"] == 64


def test_bt_and_vdso_on_the_52_bit_guest(lpa2, arm64_binaries):
    lpa2.stop_at("el0_svc", SVC64_IN_C)
    after = elf_symbols(arm64_binaries, "hello64")["hello64_after_write"]
    last = [line for line in lpa2.cmd("bt").splitlines() if line.startswith("#")][-1]
    assert f"{after:#018x}" in last and "user mode, 64-bit" in last
    work = lpa2.workload_pid()
    d = lpa2.json(f"kx vdso {work}")
    printed = int(re.findall(r"KX-WORK pid=\d+ vdso=(0x[0-9a-f]+)", lpa2.guest.serial())[-1], 16)
    assert d["base"] == printed and d["abi"] == "64" and d["image_matches_kernel"]
    assert d["kernel_image"]["data"] == lpa2.gdb.eval("(unsigned long)vdso_info[0].vdso_code_start")


def test_trace_reads_user_strings_through_the_52_bit_ttbr0(lpa2):
    """The loop engine reads user memory by walking TTBR0 physically (PAN
    keeps QEMU's own reads out); with DS = 1 that is the five-level walk."""
    pid = lpa2.workload_pid()
    lines = [json.loads(line) for line in run_trace(
        lpa2, f"kx trace openat --pid {pid} --count 1 --engine loop --json").splitlines() if line.startswith("{")]
    (e,) = lines[:-1]
    assert (e["pid"], e["name"]) == (pid, "openat") and e["args"][1]["decoded"] == '"/etc/kx-target"'
    assert "No breakpoints" in lpa2.cmd("info breakpoints") and lpa2.heartbeat_continues()


def test_compat_task_pages_through_the_52_bit_ttbr0(lpa2):
    """An AArch32 task's TTBR0 tables are the same 52-bit format (TCR_EL1 is
    the CPU's): its vDSO, [sigpage] and [vectors] against its own maps and
    QEMU's reads."""
    compat.test_compat_vdso_of_the_staying_task(lpa2)
    compat.test_sigpage_and_kuser_helpers(lpa2)
