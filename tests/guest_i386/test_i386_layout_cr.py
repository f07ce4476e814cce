"""kx kaslr's memory areas and kx cr on the i386 kernel, checked against QEMU's
monitor (RAM size, IDTR, TR, CR0/CR3/CR4/EFER, physical reads of the page
tables, gva2gpa) and the kernel's own data read by gdb from the DWARF
(vmap_area_list, pkmap_page_table, mp_lapic_addr, FIX_APIC_BASE)."""
import re

PAGE_OFFSET = 0xC0000000   # CONFIG_VMSPLIT_3G (Debian's 686-pae config)
MASK32 = 0xFFFFFFFF


def _xp64(kx, phys: int) -> int:
    out = kx.guest.hmp(f"xp /1gx {phys:#x}")
    return int(re.search(r":\s*0x([0-9a-f]+)", out).group(1), 16)


def _pde(kx, cr3: int, va: int) -> int:
    """The PAE page-directory entry of `va`, read physically by the monitor."""
    pdpte = _xp64(kx, (cr3 & ~0x1F & ~0x1000) + 8 * (va >> 30))
    return _xp64(kx, (pdpte & 0xFFFFFF000) + 8 * (va >> 21 & 511))


def _in_kernel(kx) -> int:
    """Stop in do_int80_syscall_32: the kernel page tables, for gdb's reads."""
    kx.run_to("do_int80_syscall_32")
    return kx.gdb.eval("$_thread") - 1


def test_memory_areas_against_the_kernel_and_the_monitor(kx):
    cpu = _in_kernel(kx)
    d = kx.json("kx kaslr")
    a = {k: (v["start"], v["end"]) for k, v in d["areas"].items()}
    assert not [w for w in d["warnings"] if "IDT" in w or "areas" in w]
    # lowmem: all of the guest's 512 MiB, up to the firmware's reserved top.
    ram = int(re.search(r"base memory: (\d+)", kx.guest.hmp("info memory_size_summary")).group(1))
    assert a["lowmem"][0] == PAGE_OFFSET and PAGE_OFFSET + ram - (1 << 20) <= a["lowmem"][1] <= PAGE_OFFSET + ram
    assert a["lowmem"][1] == kx.gdb.eval("(unsigned long)high_memory") & MASK32
    # vmalloc (and modules, the same area): every area the kernel's vmap
    # allocator handed out, lowest and highest (vmap_area_list is sorted).
    assert a["modules"] == a["vmalloc"]
    va = "((struct vmap_area *)((char *)vmap_area_list.{} - (unsigned long)&((struct vmap_area *)0)->list))"
    lowest = kx.gdb.eval(va.format("next") + "->va_start") & MASK32
    highest = kx.gdb.eval(va.format("prev") + "->va_end") & MASK32
    assert a["vmalloc"][0] <= lowest < highest <= a["vmalloc"][1], (a["vmalloc"], lowest, highest)
    assert lowest - a["vmalloc"][0] < 1 << 20
    # cpu_entry_area: the CPU's IDT is its read-only first page; each vCPU's
    # TSS lies inside.
    for n in range(2):
        mon = kx.guest.cpu_registers(n)
        assert mon["idt"]["base"] == a["cpu_entry_area"][0]
        assert a["cpu_entry_area"][0] < mon["tr_seg"]["base"] < a["cpu_entry_area"][1]
    cr3 = kx.guest.cpu_registers(cpu)["cr3"]
    # pkmap: its page table is pkmap_page_table (permanent_kmaps_init()).
    table = kx.gdb.eval("(unsigned long)pkmap_page_table") & MASK32
    assert _pde(kx, cr3, a["pkmap"][0]) & 0xFFFFFF000 == table - PAGE_OFFSET
    # fixmap: fix_to_virt(FIX_APIC_BASE) maps the local APIC.
    apic = a["fixmap"][1] - kx.gdb.eval("(int)FIX_APIC_BASE") * 4096
    assert a["fixmap"][0] <= apic < a["fixmap"][1]
    gpa = int(re.search(r"gpa: (0x[0-9a-f]+)", kx.guest.hmp(f"gva2gpa {apic:#x}")).group(1), 16)
    assert gpa == kx.gdb.eval("(unsigned long)mp_lapic_addr") & MASK32
    # The areas do not overlap, in the order of asm/pgtable_32_areas.h.
    order = ("lowmem", "vmalloc", "pkmap", "ldt_remap", "cpu_entry_area", "fixmap")
    assert all(a[x][1] <= a[y][0] for x, y in zip(order, order[1:]))
    text = kx.cmd("kx kaslr")
    assert f"{a['vmalloc'][0]:#010x}-{a['vmalloc'][1]:#010x}" in text


def test_modules_list_read_at_the_pointer_size(kx):
    """The initramfs loads no module: kx modules walks the kernel's `modules`
    list with 4-byte pointers and finds what gdb finds."""
    _in_kernel(kx)
    count = kx.gdb.eval("((struct list_head *)&modules)->next == &modules ? 0 : "
                        "(((struct list_head *)&modules)->next->next == &modules ? 1 : 2)")
    mods = kx.json("kx modules")["modules"]
    assert len(mods) == count or (count == 2 and len(mods) >= 2)
    for m in mods:
        assert a_module_in_vmalloc(kx, m)


def a_module_in_vmalloc(kx, m) -> bool:
    a = kx.json("kx kaslr")["areas"]["modules"]
    return all(a["start"] <= r["base"] < a["end"] for r in m["regions"] if r["size"])


def test_cr_says_what_pae_is_on_a_32bit_kernel(kx):
    cpu = _in_kernel(kx)
    r = kx.json(f"kx cr --cpu {cpu}")
    m = kx.guest.cpu_registers(cpu)
    got = {row["name"]: row for row in r["registers"]}
    for name in ("cr0", "cr3", "cr4", "efer"):
        assert got[name.upper()]["value"] == m[name], name
    assert "PAE" in got["CR4"]["set"] and "PG" in got["CR0"]["set"]
    pae = next(b for b in got["CR4"]["bits"] if b["name"] == "PAE")
    assert "3-level" in pae["meaning"] and "long mode" not in pae["meaning"]
    assert ("NXE" in got["EFER"]["set"]) == bool(m["efer"] >> 11 & 1)
    assert "LMA" in got["EFER"]["clear"]
    c = r["cr3"]
    # do_int80_syscall_32 runs on the kernel PDPT; PAE's CR3[31:5] is its address.
    assert c["root_name"] == "PDPT" and c["pgd"] == m["cr3"] & ~0x1F & MASK32
    assert c["view"] == "kernel" and c["user_pgd"] == c["pgd"] + 0x1000
    text = kx.cmd("kx cr")
    assert "3-level" in text and "required by long mode" not in text
    assert "KPTI: the kernel PDPT" in text
