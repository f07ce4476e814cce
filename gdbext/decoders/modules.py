"""Loadable kernel modules: the words for what struct module holds.

enum module_state and the taint letters are include/linux/module.h and
kernel/panic.c (taint_flags[], the same order in 6.1 and 6.12); the memory
types of 6.4+ are enum mod_mem_type (include/linux/module.h)."""
from typing import Dict, List, Optional, Sequence, Tuple

from gdbext.decoders.bits import check_uint

MODULE_STATES = {0: "live", 1: "coming", 2: "going", 3: "unformed"}
# TAINT_PROPRIETARY_MODULE (0) ... TAINT_TEST (18): one letter each.
TAINT_LETTERS = "PFSRMBUDAWCIOELKXTN"
# enum mod_mem_type (6.4+): mem[MOD_TEXT] is where /proc/modules says a module is.
MOD_MEM_TYPES = ("text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata")
CORE_TYPES = ("text", "data", "rodata", "ro_after_init")


def state_name(state: int) -> str:
    return MODULE_STATES.get(state, f"state {state}")


def taint_letters(taints: int) -> str:
    """The letters /proc/modules prints for mod->taints (module_flags_taint())."""
    taints = check_uint(taints, 64, "module taints")
    return "".join(ch for bit, ch in enumerate(TAINT_LETTERS) if taints >> bit & 1)


def normalize(name: str) -> str:
    """Module names compare with '-' and '_' alike (modprobe does)."""
    return name.replace("-", "_")


def locate(address: int, regions: Sequence[Tuple[str, int, int]]) -> Optional[Tuple[str, int]]:
    """(region name, offset) of `address` in [(name, base, size)], or None."""
    for name, base, size in regions:
        if base and base <= address < base + size:
            return name, address - base
    return None


def add_symbol_file_args(path: str, sections: Dict[str, int], present) -> List[str]:
    """add-symbol-file's arguments for a module: .text's address first,
    then `-s NAME ADDR` for every other section the kernel placed that the
    file has (the sections of /sys/module/NAME/sections).  `present` is the
    file's section names, or {name: sh_addr}: gdb adds a relocatable
    file's sh_addr to its symbols, so that much is taken off the address."""
    if ".text" not in sections:
        raise ValueError("the module has no .text section address")
    vma = present if isinstance(present, dict) else {}

    def at(name):
        return f"{(sections[name] - (vma.get(name) or 0)) & (1 << 64) - 1:#x}"
    args = [path, at(".text")]
    for name in sorted(sections):
        if name != ".text" and name in present and sections[name]:
            args += ["-s", name, at(name)]
    return args
