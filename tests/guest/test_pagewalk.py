"""kx pagewalk against QEMU's monitor: `gva2gpa` (the CPU's own walk of its
current CR3) and `info tlb` (every mapping of that CR3 with its flags),
under KPTI at entry_SYSCALL_64 (user PGD) and in do_syscall_64 (kernel)."""
import random
import re

TLB_LINE = re.compile(r"([0-9a-f]{16}): ([0-9a-f]{16}) (\S{9})")


def gva2gpa(kx, cpu, address):
    kx.guest.hmp(f"cpu {cpu}")
    out = kx.guest.hmp(f"gva2gpa {address:#x}")
    m = re.search(r"gpa: (0x[0-9a-f]+)", out)
    return int(m.group(1), 16) if m else None


def tlb_flags(view):
    """kx's leaf flags in `info tlb`'s letters: NX G PS D A PCD PWT U W."""
    leaf = view["levels"][-1]["bits"]
    letters = (("X", leaf["nx"]), ("G", leaf.get("global_page")), ("P", view["page_size"] > 4096),
               ("D", leaf.get("dirty")), ("A", leaf["accessed"]), ("C", leaf["pcd"]), ("T", leaf["pwt"]),
               ("U", leaf["user"]), ("W", leaf["writable"]))
    return "".join(ch if on else "-" for ch, on in letters)


def test_kpti_both_views_at_entry(kx):
    kx.run_to("entry_SYSCALL_64")
    cpu = kx.gdb.eval("$_thread") - 1
    table = kx.symbols["sys_call_table"]
    r = kx.json("kx pagewalk sys_call_table")
    assert r["address"] == table and r["symbol"] == "sys_call_table" and r["cpu"] == cpu
    user, kernel = r["views"]
    assert (user["name"], user["active"], kernel["name"], kernel["active"]) == ("user", True, "kernel", False)
    assert kernel["root"] == user["root"] - 0x1000
    # The CPU's own walk (the user PGD): the kernel's data is not mapped.
    assert gva2gpa(kx, cpu, table) is None and user["mapped"] is False
    assert user["fault"]["reason"] == "not present"
    assert kernel["mapped"] and kernel["phys"] == table - 0xFFFFFFFF80000000   # nokaslr: phys_base 0
    assert kernel["executable"] is False and kernel["writable"] is False
    # User code is mapped in both: the same page, executable only in the user PGD.
    rip = kx.gdb.eval("$rcx")
    r = kx.json(f"kx pagewalk {rip:#x}")
    user, kernel = r["views"]
    assert user["phys"] == kernel["phys"] == gva2gpa(kx, cpu, rip)
    assert user["executable"] and user["user"] and not kernel["executable"]
    assert [lv["level"] for lv in user["levels"]] == ["PML4", "PDPT", "PD", "PT"]
    assert "not mapped" in kx.cmd("kx pagewalk sys_call_table") and "the CPU's CR3 now" in kx.cmd("kx pagewalk 0")


def test_matches_info_tlb(kx):
    kx.run_to("do_syscall_64")
    cpu = kx.gdb.eval("$_thread") - 1
    kx.guest.hmp(f"cpu {cpu}")
    lines = TLB_LINE.findall(kx.guest.hmp("info tlb"))
    assert len(lines) > 100
    rng = random.Random(7)
    for va, pa, flags in rng.sample(lines, 30):
        va, pa = int(va, 16), int(pa, 16)
        view = kx.json(f"kx pagewalk {va:#x}")["views"][0]
        assert view["name"] == "kernel" and view["active"]
        assert view["phys"] & ~0xFFF == pa & ~0xFFF, hex(va)
        assert tlb_flags(view) == flags, hex(va)


def test_task_page_tables(kx):
    kx.run_to("do_syscall_64")
    cpu = kx.gdb.eval("$_thread") - 1
    task = kx.json("kx task")
    sp = kx.json("kx regs")["regs"]["sp"]
    r = kx.json(f"kx pagewalk {sp:#x} --pid {task['pid']}")
    assert r["source"] == "task" and r["task"]["pid"] == task["pid"]
    kernel = next(v for v in r["views"] if v["name"] == "kernel")
    assert kernel["active"] and kernel["phys"] == gva2gpa(kx, cpu, sp)
    by_root = kx.json(f"kx pagewalk {sp:#x} --cr3 {kernel['root']:#x}")
    assert by_root["views"][0]["phys"] == kernel["phys"] and by_root["source"] == "root"


def test_errors_are_one_line(kx):
    assert "error" in kx.json("kx pagewalk no_such_symbol_kx")
    assert "error" in kx.json("kx pagewalk 0 --cr3 0x1000 --pid 1")
    assert "error" in kx.json("kx pagewalk 0 --cpu 9")
    r = kx.json("kx pagewalk 0x8000000000000000")
    assert "not canonical" in r["views"][0]["error"]
