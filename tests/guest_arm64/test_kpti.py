"""arm64 KPTI: a Cortex-A72 guest with KASLR, on which the cloud kernel
turns KPTI on by itself ("kernel page table isolation forced ON by KASLR":
kaslr_requires_kpti(), arch/arm64/kernel/cpufeature.c; the A72 has no
E0PD).  While user code or the trampoline runs, TTBR1_EL1 is
tramp_pg_dir and VBAR_EL1 the fixmap alias of tramp_vectors.

Ground truth: the guest's own boot log on the console, QEMU's monitor
(`gva2gpa`, `xp`, `info registers`), System.map slid by VBAR_EL1 - `vectors`
at a kernel stop, gdb's own reads of per-cpu variables there, and hello64's
registers.  One kernel (the first of KX_TEST_ARM64_KERNELS) is enough.
"""
import re

import pytest

from .conftest import ARM64_KERNELS, Arm64Session
from .test_entry import SVC64_AT_ENTRY, SVC64_IN_C, elf_symbols
from .snapshot import Arm64Snapshotter
from .test_matrix import ARM64, user_svc
from tests import reliability as R
from tests.guest.conftest import heartbeat_without_trap
from tests.guest.test_matrix import help_subcommands, run_state
from tests.guestlib import LabConfig

pytestmark = pytest.mark.guest
MASK64 = (1 << 64) - 1      # __per_cpu_offset is a wrapping (two's complement) offset

CONFIG = LabConfig(kernel=ARM64_KERNELS[0], smp=2, cpu="cortex-a72", pti="auto", kaslr=True,
                   append="loglevel=7", arch="arm64")     # loglevel: the CPU features lines reach the console


@pytest.fixture(scope="module")
def kpti_guest():
    session = Arm64Session.get(CONFIG)
    yield session
    Arm64Session.release(CONFIG)


def gpa(session, cpu, address) -> int:
    session.guest.hmp(f"cpu {cpu}")
    text = session.guest.hmp(f"gva2gpa {address:#x}")
    m = re.search(r"gpa: (0x[0-9a-f]+)", text)
    assert m, f"gva2gpa {address:#x} on CPU {cpu}: {text!r}"
    return int(m.group(1), 16)


def xp_u64(session, phys) -> int:
    return int(session.guest.hmp(f"xp /1gx {phys:#x}").split()[-1], 16)


@pytest.fixture(scope="module")
def facts(kpti_guest, arm64_binaries):
    """At el0_svc (EL1, swapper_pg_dir): the slide, and the physical
    addresses of what the trampoline stops need, by the monitor."""
    s = kpti_guest
    s.ensure_stopped()
    cpu = s.stop_at("el0_svc", SVC64_IN_C)
    slide = s.reg("VBAR") - s.symbols["vectors"]
    per_cpu = [s.gdb.eval(f"__per_cpu_offset[{c}]") for c in (0, 1)]
    f = {"cpu": cpu, "slide": slide, "ttbr1_kernel": s.reg("TTBR1_EL1"),
         "tramp_vectors_phys": gpa(s, cpu, s.symbols["tramp_vectors"] + slide),
         "tramp_pg_dir_phys": gpa(s, cpu, s.symbols["tramp_pg_dir"] + slide),
         "swapper_phys": gpa(s, cpu, s.symbols["swapper_pg_dir"] + slide),
         "entry_task_phys": [gpa(s, cpu, (s.symbols["__entry_task"] + slide + o) & MASK64) for o in per_cpu],
         "this_cpu_vector": [s.gdb.eval(f"*(unsigned long *)((char *)&this_cpu_vector + {o})") for o in per_cpu],
         "svc": user_svc(arm64_binaries)}
    f["snapper"] = Arm64Snapshotter(s, slide=slide)    # the text's physical address, found on swapper_pg_dir
    return f


def test_the_kernel_says_kpti_is_on(kpti_guest, facts):
    log = kpti_guest.guest.serial()
    assert "kernel page table isolation forced ON by KASLR" in log
    assert "CPU features: detected: Kernel page table isolation (KPTI)" in log
    assert facts["slide"] != 0 and facts["slide"] % 0x10000 == 0
    assert facts["ttbr1_kernel"] & 0xFFFFFFFFF000 == facts["swapper_phys"]


def test_at_el1_kx_kaslr_and_vectors(kpti_guest, facts):
    s = kpti_guest
    d = s.json("kx kaslr")
    assert d["text_slide"] == facts["slide"] and d["match"] is True, d
    assert d["sources"]["vbar"] == d["sources"]["banner"] == facts["slide"]
    v = s.json("kx vectors")
    assert v["table"] == "vectors" and not v["kpti"] and v["alias_of"] is None
    assert all(e["ok"] for e in v["entries"]), v


def test_at_el0_vbar_is_the_trampoline_alias(kpti_guest, facts):
    s = kpti_guest
    cpu = s.stop_at(f"{facts['svc']:#x}", SVC64_AT_ENTRY)
    mon = s.monitor_registers(cpu)
    assert mon["mode"] == "EL0t" and mon["pc"] == facts["svc"]
    vbar = s.reg("VBAR")
    assert vbar == facts["this_cpu_vector"][cpu]       # what tramp_exit wrote (entry.S)
    # TTBR1_EL1 is tramp_pg_dir (plus the user ASID bit): the kernel is unmapped.
    assert s.reg("TTBR1_EL1") & 0xFFFFFFFFF000 == facts["tramp_pg_dir_phys"]
    v = s.json("kx vectors")
    assert v["kpti"] and v["vbar"] == vbar, v
    slot = v["alias_of"] - (s.symbols["tramp_vectors"] + facts["slide"])
    assert slot in (0, 0x800, 0x1000, 0x1800), v
    assert v["table"] == ("tramp_vectors" if slot == 0 else f"tramp_vectors+{slot:#x}")
    r = s.json("kx sysregs")
    vbar_expected = next(e for e in r["expected"] if e["register"] == "VBAR_EL1")
    assert vbar_expected["ok"] and vbar_expected["alias_of"] == v["alias_of"]
    assert r["values"]["TPIDR_EL1"] == s.reg("TPIDR_EL1") and not r["warnings"], r
    t = s.json("kx task")
    assert t["comm"] == "hello64" and t["address"] == xp_u64(s, facts["entry_task_phys"][cpu])
    assert "user mode" in s.json("kx event")["error"]
    k = s.json("kx kaslr")              # at EL0: through the trampoline's literal pool
    assert k["text_slide"] == facts["slide"] and k["match"] is True, k
    assert "trampoline" in k["source_notes"]["vbar"], k


def test_in_the_trampoline(kpti_guest, facts, arm64_binaries):
    """The trampoline's lower-EL AArch64 sync entry at VBAR_EL1 + 0x400:
    EL1, still on tramp_pg_dir, the user's registers live."""
    s = kpti_guest
    s.stop_at(f"{facts['svc']:#x}", SVC64_AT_ENTRY)
    entry = s.reg("VBAR") + 0x400
    cpu = s.stop_at(f"{entry:#x}", SVC64_AT_ENTRY)
    mon = s.monitor_registers(cpu)
    assert mon["mode"] == "EL1h" and mon["pc"] == entry and mon["x8"] == 64
    assert s.reg("TTBR1_EL1") & 0xFFFFFFFFF000 == facts["tramp_pg_dir_phys"]
    # The alias is the trampoline's page: the monitor translates it there.
    v = s.json("kx vectors")
    assert v["kpti"] and v["alias_of"] == s.symbols["tramp_vectors"] + facts["slide"] + (
        gpa(s, cpu, s.reg("VBAR")) - facts["tramp_vectors_phys"])
    # kx reads the kernel through swapper_pg_dir (TTBR1_EL1 + TRAMP_SWAPPER_OFFSET).
    t = s.json("kx task")
    assert t["comm"] == "hello64" and t["address"] == xp_u64(s, facts["entry_task_phys"][cpu])
    e = s.json("kx event")      # ESR_EL1 says SVC64: the user's registers are live
    assert e["source"] == "registers" and e["nr"] == 64 and e["name"] == "write", e
    assert (e["args"][0]["value"], e["args"][2]["value"]) == (mon["x0"], mon["x2"])
    r = s.json("kx sysregs")
    assert next(x for x in r["expected"] if x["register"] == "VBAR_EL1")["ok"], r
    # kx kaslr: VBAR_EL1 is the alias; the trampoline's literal pool holds `vectors`.
    k = s.json("kx kaslr")
    assert k["text_slide"] == facts["slide"] and k["match"] is True, k
    assert k["sources"]["vbar"] == k["sources"]["banner"] == facts["slide"]
    assert "trampoline" in k["source_notes"]["vbar"], k
    # Symbols stay right: the next stop is el0t_64_sync, at its slid address.
    s.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    assert s.reg("pc") == s.symbols["el0t_64_sync"] + facts["slide"]
    after = elf_symbols(arm64_binaries, "hello64")["hello64_after_write"]
    assert s.json("kx event")["return_ip"] == after


@pytest.mark.parametrize("state", ["kpti-el0", "kpti-trampoline"])
def test_matrix_on_the_trampoline_tables(kpti_guest, facts, state):
    """tests/guest_arm64/test_matrix.py's matrix at the two stops where
    the CPU runs on tramp_pg_dir: every command leaves the guest as it was
    and prints no traceback."""
    s = kpti_guest
    cpu = s.stop_at(f"{facts['svc']:#x}", SVC64_AT_ENTRY)
    if state == "kpti-trampoline":
        cpu = s.stop_at(f"{s.reg('VBAR') + 0x400:#x}", SVC64_AT_ENTRY)
    assert s.reg("TTBR1_EL1") & 0xFFFFFFFFF000 == facts["tramp_pg_dir_phys"]
    kernel = f"arm64-{CONFIG.kernel}"
    findings = run_state(s, kernel, state, facts["snapper"], help_subcommands(s), matrix=ARM64)
    problem = heartbeat_without_trap(s)
    if problem:
        R.record_disturbance(f"{kernel}/{state}: continue", problem)
        findings.append(f"{state}: after the commands, {problem}")
    assert not findings, f"{kernel} {state} (CPU {cpu}):\n" + "\n".join(findings)
