"""kx event at the syscall entry points, against the workload's own values.

Ground truth: the workload's raw syscalls (scripts/guest/kxwork.c: openat of
the path it prints as `target=`, the invalid nr 1000 whose -ENOSYS it prints
as `invalid=`), the seed programs' registers and ELF symbols, System.map,
and the bytes of the workload binary itself (a return address must follow
a `syscall` instruction).
"""
import json
import re

import pytest
from elftools.elf.elffile import ELFFile

from kxlab import initramfs
from tests.guestlib import binary_string_at, int80_entry

from .test_tasks import HELLO32_LEN, elf_symbols, workload_pid

SYSCALL_INSN = b"\x0f\x05"


def serial_field(kx, key):
    values = re.findall(rf"\b{key}=(\S+)", kx.guest.serial())
    assert values, f"the workload never printed {key}="
    return values[-1]


def binary_bytes_before(binary, address, n):
    """The n bytes of the ELF file that end at virtual `address`."""
    with open(initramfs.binaries_dir() / binary, "rb") as f:
        elf = ELFFile(f)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= address - n and address <= seg["p_vaddr"] + seg["p_filesz"]:
                data = seg.data()
                off = address - seg["p_vaddr"]
                return data[off - n:off]
    raise AssertionError(f"{address:#x} is not in {binary}'s loaded segments")


def expected_dispatch(kx):
    # 6.1.85+/6.9+: do_syscall_64 calls x64_sys_call(); before, sys_call_table.
    return "x64_sys_call" if "x64_sys_call" in kx.symbols else "sys_call_table"


def check_openat(kx, d):
    assert (d["nr"], d["name"], d["abi"]) == (257, "openat", "64")
    assert d["pid"] == workload_pid(kx) and d["comm"] == "kxwork"
    path = serial_field(kx, "target")
    assert d["args"][1]["decoded"] == f'"{path}"'
    assert d["args"][0]["decoded"] == "AT_FDCWD"
    assert d["args"][2]["decoded"] == "O_RDONLY"
    assert [a["reg"] for a in d["args"]] == ["rdi", "rsi", "rdx", "r10"]
    assert d["handler"]["symbol"] == "__x64_sys_openat"
    assert d["handler"]["address"] == kx.symbols["__x64_sys_openat"]
    assert d["dispatch"] == expected_dispatch(kx)
    assert binary_bytes_before("kxwork", d["return_ip"], 2) == SYSCALL_INSN
    assert d["ret"] is None


def test_event_at_entry_syscall_64_openat(kx):
    kx.run_to("entry_SYSCALL_64", condition="$rax == 257")
    d = kx.json("kx event")
    assert d["entry"] == "entry_SYSCALL_64" and d["source"] == "registers"
    assert d["cpu"] == kx.gdb.eval("$_thread") - 1
    check_openat(kx, d)
    # SYSCALL put the return address in RCX and RFLAGS in R11.
    assert d["return_ip"] == kx.reg("rcx") and d["rflags"] == kx.reg("r11")
    assert "IF" in d["rflags_names"]
    text = kx.cmd("kx event")
    assert 'openat' in text and "AT_FDCWD" in text and "__x64_sys_openat" in text
    # A user address has no kernel symbol (5.10's absolute __crc_* values
    # once named it: "__crc___sock_recv_wifi_status+0xbcf29").
    returns = next(l for l in text.splitlines() if l.strip().startswith("returns to"))
    assert returns.rstrip().endswith("user space"), returns

    # Later on the same vCPU, from pt_regs: the same call.
    thread = kx.gdb.eval("$_thread")
    kx.run_to("do_syscall_64", condition=f"$_thread == {thread}")
    later = kx.json("kx event")
    assert later["source"] == "pt_regs"
    check_openat(kx, later)
    assert later["return_ip"] == d["return_ip"] and later["rflags"] == d["rflags"]


def test_event_in_the_handler(kx):
    kx.run_to("__x64_sys_openat")
    d = kx.json("kx event")
    assert d["source"] == "pt_regs"
    check_openat(kx, d)


def test_invalid_nr_is_enosys(kx):
    kx.run_to("entry_SYSCALL_64", condition="$rax == 1000")
    d = kx.json("kx event")
    assert d["nr"] == 1000 and d["name"] is None and d["handler"] is None
    assert d["ret"] == -38 == int(re.match(r"-?\d+", serial_field(kx, "invalid")).group(0))
    assert d["ret_name"] == "ENOSYS"
    assert d["nr_syscalls"] <= 1000
    # The workload passes 0x11 .. 0x66 in the six argument registers.
    assert [a["value"] for a in d["args"]] == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]
    assert any("ENOSYS" in n for n in d["notes"])


@pytest.mark.parametrize("location", ["int80-entry", "ksys_write"])
def test_int80_compat_write(kx, location):
    sym = elf_symbols("hello32")
    at_entry = location == "int80-entry"
    location = int80_entry(kx.symbols) if at_entry else location
    kx.run_to(location, condition=f"$rdx == {HELLO32_LEN}" + (" && $rax == 4" if at_entry else ""))
    d = kx.json("kx event")
    assert (d["abi"], d["nr"], d["name"]) == ("32", 4, "write")
    assert d["comm"] == "hello32"
    regs = [a["reg"] for a in d["args"]]
    assert regs == ["ebx", "ecx", "edx"]
    assert [a["value"] for a in d["args"]] == [1, sym["msg"], HELLO32_LEN]
    assert d["args"][1]["decoded"] == '"Hello from int $0x80 (32-bit)\\n"'
    assert d["return_ip"] == sym["hello32_after_write"]
    assert d["handler"]["symbol"] == "__ia32_sys_write"
    assert d["handler"]["address"] == kx.symbols["__ia32_sys_write"]
    if at_entry:
        assert d["entry"] == location and d["source"] == "registers"
    else:
        assert d["source"] == "pt_regs"


def test_event_refuses_where_there_is_no_syscall(kx):
    kx.run_to("entry_SYSCALL_64")
    sym = elf_symbols("hello64")
    # user mode: stop on the hello64 write's return address
    err = kx.gdb.cmd_full("kx event --cpu 7")
    assert "no CPU 7" in err["error"]
    kx.run_to(f"{sym['hello64_after_write']:#x}")
    j = kx.json("kx event")
    assert "user mode" in j["error"]
    # a kernel thread: the idle task of a halted CPU, if there is one
    for cpu in range(2):
        info = kx.cmd(f"thread {cpu + 1}")
        if "native_safe_halt" in info or "safe_halt" in info:
            assert "kernel thread" in kx.json(f"kx event --cpu {cpu}")["error"]


def test_event_at_entry_sysenter_compat(kx):
    """sysenter32's write through __kernel_vsyscall, at the first instruction
    of entry_SYSENTER_compat: i386 ABI from live registers."""
    from .test_tasks import elf_symbols
    sym = elf_symbols("sysenter32")
    kx.run_to("entry_SYSENTER_compat", condition="$eax == 4")
    d = kx.json("kx event")
    assert (d["abi"], d["nr"], d["name"], d["entry"], d["comm"]) == \
        ("32", 4, "write", "entry_SYSENTER_compat", "sysenter32")
    assert [(a["reg"], a["value"]) for a in d["args"][:3]] == [("ebx", 1), ("ecx", sym["msg"]), ("edx", 38)]
    assert d["args"][2]["name"] == "count"
    assert d["handler"]["symbol"] == "__ia32_sys_write"
    assert len(d["args"]) == 3   # write's signature: no stack argument to show


def test_execve_path_from_the_page_cache(kx):
    """kxwork's freshly forked child passes execve a path in the parent's
    .rodata, which fork() did not map in the child (copy_page_range skips
    a file mapping with no anonymous pages): QEMU's monitor finds no
    translation for it.  kx reads that page from the page cache; the path
    is what the kxwork binary holds at that address."""
    for _ in range(5):          # the first execve kxwork's child makes (kxboot's children exec too)
        kx.run_to("entry_SYSCALL_64", condition="$rax == 59")
        d = kx.json("kx event")
        if d["comm"] == "kxwork":
            break
    assert (d["name"], d["comm"]) == ("execve", "kxwork"), d
    cpu = kx.gdb.eval("$_thread") - 1
    filename = kx.reg("rdi")
    kx.guest.hmp(f"cpu {cpu}")
    assert "Unmapped" in kx.guest.hmp(f"gva2gpa {filename:#x}")
    want = binary_string_at(initramfs.binaries_dir() / "kxwork", filename)
    assert want.startswith("/bin/")
    assert d["args"][0]["decoded"] == f'"{want}"' and d["args"][1]["decoded"] == f'["{want}"]'
    trace = [json.loads(line) for line in kx.cmd("kx trace execve --comm kxwork --count 2 --json").splitlines()
             if line.startswith("{") and '"name"' in line]
    assert len(trace) == 2
    for e in trace:
        path = binary_string_at(initramfs.binaries_dir() / "kxwork", e["args"][0]["value"])
        assert e["args"][0]["decoded"] == f'"{path}"', e
