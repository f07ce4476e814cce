"""arm64: kx sysregs, kx vectors, kx syscalls --check and kx kaslr against
System.map, gdb's own reads of the kernel's variables and QEMU's monitor."""
import pytest

from .test_entry import SVC64_AT_ENTRY

pytestmark = pytest.mark.guest

VECTOR_HANDLERS = [f"{p}_{w}_{k}" for p, w in (("el1t", "64"), ("el1h", "64"), ("el0t", "64"), ("el0t", "32"))
                   for k in ("sync", "irq", "fiq", "error")]


def test_sysregs_at_the_svc(a64):
    cpu = a64.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    d = a64.json("kx sysregs")
    v, dec = d["values"], d["decoded"]
    assert v["VBAR_EL1"] == a64.symbols["vectors"]
    assert v["TPIDR_EL1"] == a64.gdb.eval(f"__per_cpu_offset[{cpu}]")
    assert dec["ESR_EL1"]["ec"] == 0x15 and dec["ESR_EL1"]["ec_name"].startswith("SVC64")
    assert dec["ESR_EL1"]["imm16"] == 0                      # svc #0
    assert v["ELR_EL1"] == a64.reg("ELR_EL1") and dec["SPSR_EL1"]["mode"] == "EL0t"
    assert d["current_el"] == 1 and a64.monitor_registers(cpu)["mode"].startswith("EL1")
    assert "M" in dec["SCTLR_EL1"]["set"]                   # the MMU is on
    tcr = dec["TCR_EL1"]
    assert (tcr["tg1"], tcr["va_bits_kernel"]) == ("4K", 48)   # lpa2=off: 48-bit VAs on 6.12 too
    # The ASID is TTBR1's (TCR.A1) and is the task's mm context id.
    assert tcr["a1"] == 1
    # (SP_EL0 is still the user sp here: the task is per-cpu __entry_task.)
    task = f"(*(struct task_struct **)((char *)&__entry_task + __per_cpu_offset[{cpu}]))"
    asid = a64.gdb.eval(f"{task}->mm->context.id.counter") & 0xFFFF
    assert dec["TTBR1_EL1"]["asid"] == asid
    assert d["warnings"] == []


def test_vectors_named_from_system_map(a64):
    a64.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    d = a64.json("kx vectors")
    assert d["table"] == "vectors" and d["vbar"] == a64.symbols["vectors"]
    assert [e["handler"] for e in d["entries"]] == VECTOR_HANDLERS
    for e in d["entries"]:
        assert e["address"] == a64.symbols["vectors"] + e["offset"]
        assert e["branches_to"] == a64.symbols[e["handler"]], e
    assert d["warnings"] == []


def test_syscalls_check_applies_relocations(a64):
    for abi, table in (("64", "sys_call_table"), ("32", "compat_sys_call_table")):
        d = a64.json(f"kx syscalls --check --abi {abi}")
        assert d["check"]["problems"] == [], d["check"]
        assert d["table"] == a64.symbols[table] and d["table_symbol"] == table
        assert d["check"]["checked"]["table_entries"] == d["nr_syscalls"]
    entry = a64.json("kx syscalls --abi 64 64")
    assert entry["entries"][0]["handler"] == a64.symbols["__arm64_sys_write"]


def test_kaslr_off_reads_zero(a64):
    d = a64.json("kx kaslr")
    assert d["text_slide"] == 0 and d["sources"]["vbar"] == 0 and d["match"] is True
