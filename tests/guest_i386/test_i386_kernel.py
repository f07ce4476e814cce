"""kx on a native i386 kernel (Debian 686-pae 6.1), checked against QEMU's
monitor, System.map and what the static i386 workload put in its registers
and printed: current/ps, 32-bit pt_regs, kx event at the int $0x80 and
sysenter stubs, in do_int80_syscall_32 and in the handler, the syscall
table, the PAE walk, the vDSO, KASLR, $kx_current and bt."""
import re

from tests.guest_i386.conftest import HELLO32_LEN, SYSENTER32_LEN, elf_symbols, workload

PT_REGS32 = 68
TOP_PADDING = 8       # TOP_OF_KERNEL_STACK_PADDING, x86-32 without VM86
PAGE_OFFSET = 0xC0000000   # CONFIG_VMSPLIT_3G (Debian's 686-pae config)


def test_current_task_is_per_cpu_through_the_percpu_segment(kx):
    """kx reads current_task + __per_cpu_offset[cpu]; the kernel's %fs
    (__KERNEL_PERCPU) has that same offset as its base, in QEMU's monitor.
    The slot is read physically: through gdb it would go through the selected
    vCPU's CR3, which under PTI may be a user page table without lowmem."""
    for cpu in range(2):
        regs = kx.guest.cpu_registers(cpu)
        if regs["fs_seg"]["selector"] != 0xD8:
            continue      # this vCPU is in user mode: its %fs is the user's
        task = kx.json(f"kx task --cpu {cpu}")
        slot = regs["fs_seg"]["base"] + kx.symbols["current_task"]
        word = re.search(r":\s*0x([0-9a-f]+)", kx.guest.hmp(f"xp /1wx {slot - PAGE_OFFSET:#x}"))
        assert task["address"] == int(word.group(1), 16)
        assert kx.gdb.eval(f"$kx_current({cpu})") & 0xFFFFFFFF == task["address"]


def test_ps_and_8k_stacks(kx):
    pid = workload(kx)["pid"]
    ps = kx.json("kx ps")
    mine = [t for t in ps["tasks"] if t["pid"] == pid]
    assert mine and mine[0]["comm"] == "kxwork"
    assert any(t["pid"] == 1 and t["comm"] == "init" for t in ps["tasks"])
    t = kx.json(f"kx task {pid}")
    stack = t["stack"]
    assert stack["size"] == 8192 and stack["base"] % 8192 == 0 and stack["end_magic_ok"]
    assert stack["pt_regs"] == stack["base"] + 8192 - TOP_PADDING - PT_REGS32


def test_event_at_entry_int80_before_save_all(kx):
    """Live registers at entry_INT80_32's first instruction: the seed's
    hello32 write, its return address from the IRET frame; bt ends in the
    user frame."""
    sym = elf_symbols("hello32")
    kx.run_to("entry_INT80_32", condition=f"$eax == 4 && $edx == {HELLO32_LEN}")
    d = kx.json("kx event")
    assert (d["abi"], d["nr"], d["name"], d["entry"], d["source"]) == ("32", 4, "write", "entry_INT80_32", "registers")
    assert d["comm"] == "hello32"
    assert [(a["reg"], a["value"]) for a in d["args"]] == [("ebx", 1), ("ecx", sym["msg"]), ("edx", HELLO32_LEN)]
    assert d["args"][1]["decoded"] == '"Hello from int $0x80 (32-bit)\\n"'
    assert d["return_ip"] == sym["hello32_after_write"]
    assert d["handler"]["symbol"] == "__ia32_sys_write" and d["handler"]["address"] == kx.symbols["__ia32_sys_write"]
    bt = kx.cmd("bt")
    last = bt.strip().splitlines()[-1]
    assert f"{sym['hello32_after_write']:#010x}" in last and "user mode, 32-bit" in last


def test_save_all_frame_is_pt_regs_in_do_int80_and_the_handler(kx):
    """In do_int80_syscall_32(regs) (regparm: regs in eax) the frame SAVE_ALL
    pushed is the task's pt_regs, 68 bytes below its stack top; kx regs and
    kx event read the call from it, and the handler sees the same call."""
    sym = elf_symbols("hello32")
    kx.run_to("do_int80_syscall_32",
              condition=f"((struct pt_regs *)$eax)->orig_ax == 4 && ((struct pt_regs *)$eax)->dx == {HELLO32_LEN}")
    pt_regs = kx.gdb.eval("$eax") & 0xFFFFFFFF
    r = kx.json("kx regs")
    assert r["address"] == pt_regs and r["mode"] == "32"
    regs = r["regs"]
    assert (regs["bx"], regs["cx"], regs["dx"], regs["orig_ax"]) == (1, sym["msg"], HELLO32_LEN, 4)
    assert regs["ip"] == sym["hello32_after_write"] and regs["cs"] == 0x73 and regs["ss"] == 0x7B
    assert regs["ax"] == 0xFFFFFFDA                       # -ENOSYS until the handler returns
    assert [a["reg"] for a in r["args"]] == ["ebx", "ecx", "edx", "esi", "edi", "ebp"]
    assert r["cs"]["name"] == "USER_CS" and r["segments"]["ds"]["name"] == "USER_DS"
    task = kx.json("kx task")
    assert task["stack"]["pt_regs"] == pt_regs
    # The $kx_* functions agree with gdb's own view of the same frame.
    assert kx.gdb.eval("$kx_ptregs()") & 0xFFFFFFFF == pt_regs
    assert kx.gdb.eval("$kx_ptregs()->orig_ax") == 4 and kx.gdb.eval("$kx_ptregs()->bx") == 1
    cpu = kx.gdb.eval("$_thread") - 1
    assert kx.gdb.eval(f'$kx_per_cpu("current_task", {cpu})') & 0xFFFFFFFF == task["address"]
    ev = kx.json("kx event")
    assert (ev["source"], ev["nr"], ev["name"], ev["return_ip"]) == ("pt_regs", 4, "write", sym["hello32_after_write"])
    kx.run_to("__ia32_sys_write", condition=f"((struct pt_regs *)$eax) == {pt_regs:#x}")
    ev = kx.json("kx event")
    assert (ev["nr"], ev["comm"], ev["handler"]["symbol"]) == (4, "hello32", "__ia32_sys_write")
    assert kx.gdb.eval("$pc") & 0xFFFFFFFF == kx.symbols["__ia32_sys_write"]


def test_event_at_entry_sysenter(kx):
    """sysenter32's write through __kernel_vsyscall, at entry_SYSENTER_32's
    first instruction: live registers (ebp holds the user esp)."""
    sym = elf_symbols("sysenter32")
    kx.run_to("entry_SYSENTER_32", condition=f"$eax == 4 && $edx == {SYSENTER32_LEN}")
    d = kx.json("kx event")
    assert (d["abi"], d["nr"], d["name"], d["entry"], d["comm"]) == \
        ("32", 4, "write", "entry_SYSENTER_32", "sysenter32")
    assert [(a["reg"], a["value"]) for a in d["args"]] == [("ebx", 1), ("ecx", sym["msg"]), ("edx", SYSENTER32_LEN)]
    assert any("__kernel_vsyscall" in n for n in d["notes"])


def test_syscall_table_against_system_map(kx):
    d = kx.json("kx syscalls --check")
    assert d["table"] == kx.symbols["sys_call_table"] and d["switch"] == kx.symbols["ia32_sys_call"]
    assert d["nr_syscalls"] == 451 and d["dispatch"]["function"] == "ia32_sys_call"
    by_nr = {e["nr"]: e for e in d["entries"]}
    for nr, name in ((4, "write"), (20, "getpid"), (295, "openat"), (162, "nanosleep_time32")):
        assert by_nr[nr]["name"] == name
        assert by_nr[nr]["handler"] == kx.symbols[f"__ia32_sys_{name}"]
    # The live ia32_sys_call() (ftrace's NOP at its entry) decodes like the file's.
    assert d["check"]["clean"] and d["check"]["checked"] == {"table_entries": 451, "switch": "ia32_sys_call"}


def test_invalid_number_is_enosys(kx):
    kx.run_to("do_int80_syscall_32", condition="((struct pt_regs *)$eax)->orig_ax == 1000")
    d = kx.json("kx event")
    assert d["nr"] == 1000 and d["name"] is None and d["handler"] is None
    assert [a["value"] for a in d["args"]] == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]
    assert re.search(r"invalid=-38\(ENOSYS\)", kx.guest.serial())


def test_pae_walk_against_qemu(kx):
    """The 3-level PAE walk: the kernel's 2 MiB text mapping and a 4 KiB
    stack page, physical addresses as QEMU's gva2gpa gives them."""
    text = kx.symbols["_text"]
    d = kx.json(f"kx pagewalk {text:#x}")
    view = d["views"][0]
    assert view["paging"] == "PAE" and [lv["linux"] for lv in view["levels"]] == ["pgd", "pmd"]
    assert view["page_size"] == 2 << 20
    gpa = int(re.search(r"gpa: (0x[0-9a-f]+)", kx.guest.hmp(f"gva2gpa {text:#x}")).group(1), 16)
    assert view["phys"] == gpa
    stack = kx.json("kx task")["stack"]["pt_regs"]
    view = kx.json(f"kx pagewalk {stack:#x}")["views"][0]
    gpa = int(re.search(r"gpa: (0x[0-9a-f]+)", kx.guest.hmp(f"gva2gpa {stack:#x}")).group(1), 16)
    assert view["phys"] == gpa


def test_vdso_and_kernel_vsyscall(kx):
    w = workload(kx)
    kx.run_to("do_int80_syscall_32", condition="((struct pt_regs *)$eax)->orig_ax == 20")
    d = kx.json(f"kx vdso {w['pid']}")
    assert d["abi"] == "32" and d["elf"]["class"] == 32 and d["base"] == w["vdso"]
    vsys = next(s for s in d["symbols"] if s["name"] == "__kernel_vsyscall")
    assert vsys["address"] == w["sysinfo"]            # AT_SYSINFO, as the workload read it
    assert d["kernel_vsyscall"]["kind"] == "sysenter"


def test_kaslr_off_and_banner(kx):
    d = kx.json("kx kaslr")
    assert d["text_slide"] == 0 and d["match"] and "686-pae" in d["banner"]


def test_idt_gate_0x80_against_the_monitor(kx):
    mon = kx.guest.cpu_registers(0)
    d = kx.json("kx idt 0x80 --cpu 0")
    assert d["base"] == mon["idt"]["base"] and d["limit"] == mon["idt"]["limit"] == 256 * 8 - 1
    (gate,) = d["gates"]
    assert gate["handler"] == kx.symbols["entry_INT80_32"] and gate["symbol"] == "entry_INT80_32"
    assert (gate["dpl"], gate["type"], gate["selector"], gate["ok"]) == (3, "interrupt", 0x60, True)


def test_gdt_32bit_descriptors_named(kx):
    for cpu in range(2):
        mon = kx.guest.cpu_registers(cpu)
        d = kx.json(f"kx gdt --cpu {cpu}")
        assert d["base"] == mon["gdt"]["base"] and len(d["entries"]) == 32
        by_name = {e["name"]: e for e in d["entries"] if e["name"]}
        assert by_name["KERNEL_CS"]["selector"] == 0x60 and by_name["USER_CS"]["dpl"] == 3
        assert by_name["TSS"]["kind"] == "tss-busy" and by_name["TSS"]["base"] == mon["tr_seg"]["base"]
        assert by_name["ESPFIX_SS"]["selector"] == 0xD0 and by_name["DOUBLEFAULT_TSS"]["kind"] == "tss-avail"
        # The per-cpu segment: its base is this CPU's __per_cpu_offset.
        offset = kx.gdb.eval(f"__per_cpu_offset[{cpu}]") & 0xFFFFFFFF
        assert by_name["KERNEL_PERCPU"]["base"] == offset
        if mon["fs_seg"]["selector"] == 0xD8:
            assert "FS" in by_name["KERNEL_PERCPU"]["loaded_in"] and mon["fs_seg"]["base"] == offset


def test_tss_sp0_trampoline_and_sp1_task_stack_top(kx):
    for cpu in range(2):
        mon = kx.guest.cpu_registers(cpu)
        d = kx.json(f"kx tss --cpu {cpu}")
        assert d["base"] == mon["tr_seg"]["base"] and d["selector"] == mon["tr_seg"]["selector"] == 0x80
        assert d["busy"] and d["ss"][0] == 0x68                       # __KERNEL_DS
        assert "trampoline" in d["sp0_is"] and d["base"] - 0x10000 <= d["sp"][0] <= d["base"]
        stack = kx.gdb.eval(f"(unsigned int)((struct task_struct *)$kx_current({cpu}))->stack") & 0xFFFFFFFF
        assert d["sp"][1] == stack + 8192 - 8 and "stack top" in d["sp1_is"]
        assert d["io_bitmap_base"] > d["limit"] or d["io_bitmap_base"] == 0x407C


def test_msr_sysenter_by_rdmsr_in_protected_mode(kx):
    """SYSENTER_CS/ESP/EIP by rdmsr injected in 32-bit protected mode (a
    vCPU stopped in the kernel, not halted), EFER.NX from the gdbstub."""
    kx.run_to("do_int80_syscall_32", condition="((struct pt_regs *)$eax)->orig_ax == 20")
    cpu = kx.gdb.eval("$_thread") - 1
    d = kx.json(f"kx msr --cpu {cpu}")
    by = {m["name"]: m for m in d["msrs"]}
    assert by["IA32_SYSENTER_CS"]["source"] == "rdmsr" and by["IA32_SYSENTER_CS"]["value"] == 0x60
    assert by["IA32_SYSENTER_CS"]["fields"]["selector"]["name"] == "KERNEL_CS"
    assert by["IA32_SYSENTER_EIP"]["value"] == kx.symbols["entry_SYSENTER_32"] and by["IA32_SYSENTER_EIP"]["ok"]
    tss = kx.json(f"kx tss --cpu {cpu}")
    assert by["IA32_SYSENTER_ESP"]["value"] == tss["sp"][0]
    assert by["IA32_EFER"]["fields"]["NXE"] and not by["IA32_EFER"]["fields"]["LMA"]
    efer = int(re.search(r"EFER=([0-9a-f]+)", kx.guest.hmp(f"cpu {cpu}") + kx.guest.hmp("info registers")).group(1), 16)
    assert by["IA32_EFER"]["value"] == efer
    assert "LSTAR" not in by and not d["warnings"]
