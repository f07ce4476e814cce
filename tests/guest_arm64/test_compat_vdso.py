"""arm64: `kx vdso` of an AArch32 (compat) task: the compat vDSO
(vdso_info[VDSO_ABI_AA32]), its [sigpage] and the kuser helpers' [vectors].

/bin/stay32 (scripts/guest/arm64/stay32.c) stays alive, and has touched
those pages (read the vDSO's ELF header, the kuser version word, returned
from a signal handler through the [sigpage]); it printed its own
AT_SYSINFO_EHDR, what it read and its /proc/self/maps.  Ground truth: those
lines, gdb's reads of the kernel's vdso_info and of its
__aarch32_sigret_code_start / __kuser_helper_start bytes, QEMU's `xp` at the
physical pages kx names, and QEMU's `gva2gpa` of the kernel's vDSO image.
"""
import re

import pytest

from .test_memory import monitor_bytes

pytestmark = pytest.mark.guest

PAGE = 4096


def stay32_report(session) -> dict:
    """The last KX-STAY32 block on the console: its numbers and its maps."""
    text = session.guest.serial()
    head, maps = re.findall(r"KX-STAY32 (pid=.*?) maps:\n(.*?)KX-STAY32 end", text, re.S)[-1]
    out = {k: int(v, 0) for k, v in re.findall(r"(\w+)=(\S+)", head)}
    out["maps"] = {m.group(3): (int(m.group(1), 16), int(m.group(2), 16))
                   for m in re.finditer(r"^([0-9a-f]+)-([0-9a-f]+) .*?(\[\w+\])$", maps, re.M)}
    return out


def kernel_bytes(session, start: str, end: str) -> bytes:
    size = session.gdb.eval(f"(unsigned long)&{end} - (unsigned long)&{start}")
    out = session.cmd(f"x/{size}xb (char *)&{start}")
    return bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})\b", re.sub(r"^0x[0-9a-f]+[^:]*:", "", out, flags=re.M)))


def test_compat_vdso_of_the_staying_task(a64):
    s = stay32_report(a64)
    d = a64.json(f"kx vdso {s['pid']}")
    assert d["comm"] == "stay32" and d["abi"] == "32"
    assert d["base"] == s["vdso"] and d["elf"]["class"] == 32 and d["elf"]["machine"] == "EM_ARM"
    assert d["image_matches_kernel"] and d["warnings"] == [], d["warnings"]
    assert d["kernel_image"]["data"] == a64.gdb.eval("(unsigned long)vdso_info[1].vdso_code_start")
    assert {"__vdso_clock_gettime", "__vdso_gettimeofday"} <= {x["name"] for x in d["symbols"]}
    assert (d["vmas"]["vdso"]["start"], d["vmas"]["vdso"]["end"]) == s["maps"]["[vdso]"]
    assert (d["vmas"]["vvar"]["start"], d["vmas"]["vvar"]["end"]) == s["maps"]["[vvar]"]
    # The task read the ELF header: the page is its, and it is the kernel's image page.
    page = d["pages"][0]
    a64.guest.hmp("cpu 0")
    image_phys = int(re.search(r"gpa: (0x[0-9a-f]+)", a64.guest.hmp(f"gva2gpa {d['kernel_image']['data']:#x}")).group(1), 16)
    assert page["present"] and page["phys"] == image_phys
    assert monitor_bytes(a64, page["phys"], 4) == s["vdso_magic"].to_bytes(4, "little") == b"\x7fELF"


def test_sigpage_and_kuser_helpers(a64):
    s = stay32_report(a64)
    assert s["signal"] == 10                                # its handler ran, and returned
    d = a64.json(f"kx vdso {s['pid']}")
    sig, kuser = d["sigpage"], d["kuser_helpers"]
    assert (sig["vma"]["start"], sig["vma"]["end"]) == s["maps"]["[sigpage]"] and sig["vma_name"] == "[sigpage]"
    assert sig["address"] == s["maps"]["[sigpage]"][0]
    assert (kuser["vma"]["start"], kuser["vma"]["end"]) == s["maps"]["[vectors]"] == (0xFFFF0000, 0xFFFF1000)
    assert sig["matches_kernel"] and kuser["matches_kernel"]
    # What QEMU reads at the physical pages kx names is the kernel's code.
    code = kernel_bytes(a64, "__aarch32_sigret_code_start", "__aarch32_sigret_code_end")
    assert sig["code_size"] == len(code) and monitor_bytes(a64, sig["phys"], len(code)) == code
    helpers = kernel_bytes(a64, "__kuser_helper_start", "__kuser_helper_end")
    assert monitor_bytes(a64, kuser["phys"] + PAGE - len(helpers), len(helpers)) == helpers
    # The kuser helper version word (0xffff0ffc) is what the task read.
    assert int.from_bytes(monitor_bytes(a64, kuser["phys"] + 0xFFC, 4), "little") == s["kuser_version"]
    assert "sigpage" in a64.cmd(f"kx vdso {s['pid']}")


def test_64_bit_task_has_no_compat_pages(a64):
    d = a64.json(f"kx vdso {a64.workload_pid()}")
    assert d["abi"] == "64" and d["sigpage"] is None and d["kuser_helpers"] is None
