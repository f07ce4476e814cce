"""kx modules against what the guest's kernel says itself: /init
(scripts/guest/kxboot.c) loads nls_utf8 from the kernel package and prints
its /sys/module/nls_utf8/sections, taint and /proc/modules line on the
console (KX-MODULE, KX-PROCMODULES).  --load-symbols with Debian's -dbg
module file, on the lab guest and on a KASLR guest."""
import re
import subprocess

import pytest

from kxlab import modules as labmodules


def module_truth(kx):
    serial = kx.guest.serial()
    m = re.search(r"KX-MODULE nls_utf8 (.*)", serial)
    p = re.search(r"KX-PROCMODULES nls_utf8 (\d+) \d+ \S+ (\w+) (0x[0-9a-f]+)", serial)
    if not m or not p:
        pytest.skip("the guest has no module (the lab could not fetch it)")
    words = m.group(1).split()
    fields = dict(zip(words[::2], words[1::2]))
    return {"sections": {k: int(v, 16) for k, v in fields.items() if k.startswith(".") and v != "-"},
            "taint": "" if fields["taint"] == "-" else fields["taint"],
            "size": int(p.group(1)), "state": p.group(2).lower(), "base": int(p.group(3), 16)}


def section_offset(path, symbol):
    """`symbol`'s offset in its section of the relocatable .ko."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        (sym,) = elf.get_section_by_name(".symtab").get_symbol_by_name(symbol)
        return sym["st_value"] - elf.get_section(sym["st_shndx"])["sh_addr"]


def nm_offset(path, symbol):
    out = subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[0] for line in out.splitlines() if line.split()[-1] == symbol), 16)


def test_list_matches_the_guest(kx):
    truth = module_truth(kx)
    r = kx.json("kx modules")
    (m,) = [x for x in r["modules"] if x["name"] == "nls_utf8"]
    assert (m["base"], m["size"], m["state"], m["taint"]) == (truth["base"], truth["size"], truth["state"],
                                                              truth["taint"])
    for name in (".text", ".data", ".bss"):
        assert m["sections"][name] == truth["sections"][name], name
    assert m["regions"][0]["name"] == "text" and m["regions"][0]["base"] == truth["base"]
    text = kx.cmd("kx modules")
    assert "nls_utf8" in text and f"{truth['base']:#018x}" in text


def test_addresses_print_as_module_offset(kx):
    truth = module_truth(kx)
    r = kx.json(f"kx pagewalk {truth['base'] + 0x10:#x}")
    assert r["symbol"] == "nls_utf8+0x10"
    kernel = next(v for v in r["views"] if v["name"] in ("kernel", "kernel and user"))
    assert kernel["mapped"] and kernel["executable"]
    data = kx.json(f"kx pagewalk {truth['sections']['.data']:#x}")
    kernel = next(v for v in data["views"] if v["name"] in ("kernel", "kernel and user"))
    assert data["symbol"].startswith("nls_utf8:") and kernel["mapped"] and not kernel["executable"]


def load_and_check(kx):
    truth = module_truth(kx)
    dbg = labmodules.paths(kx.kernel)["dbg"]
    r = kx.json(f"kx modules --load-symbols {dbg.parent}")
    assert r["load_symbols"]["loaded"] == ["nls_utf8"] and r["warnings"] == []
    (m,) = [x for x in r["modules"] if x["name"] == "nls_utf8"]
    assert m["symbol_file"] == str(dbg)
    char2uni = truth["sections"][".text"] + nm_offset(dbg, "char2uni")
    assert kx.cmd(f"info symbol {char2uni:#x}").startswith("char2uni in section .text of " + str(dbg))
    # The vmlinux has a char2uni of its own (nls_base): the module's is the one in nls_utf8.c.
    assert kx.gdb.eval("(unsigned long)&'nls_utf8.c'::char2uni") == char2uni
    # nls_utf8's one .data object, by its offset in .data (st_value minus
    # the section's sh_addr: 6.12's .ko links .data at 0x40).
    table = truth["sections"][".data"] + section_offset(dbg, "table")
    out = kx.cmd(f"info symbol {table:#x}")
    assert out.startswith("table in section .data of") and "nls_utf8.ko" in out, out
    # Loading again replaces the file rather than adding a second copy.
    kx.json(f"kx modules --load-symbols {dbg.parent}")
    files = kx.cmd("python print([o.filename for o in gdb.objfiles()])")
    assert files.count("nls_utf8.ko") == 1
    assert kx.gdb.eval("(unsigned long)&'nls_utf8.c'::char2uni") == char2uni
    kx.cmd(f"remove-symbol-file {dbg}")   # leave the shared gdb as it was


def test_load_symbols(kx):
    load_and_check(kx)


def test_load_symbols_under_kaslr(kaslr_lab):
    kx = kaslr_lab
    kx.ensure_stopped()
    load_and_check(kx)


def test_errors(kx, tmp_path):
    assert "not a directory" in kx.json("kx modules --load-symbols /nonexistent")["error"]
    r = kx.json(f"kx modules --load-symbols {tmp_path}")
    assert r["load_symbols"]["missing"] and r["load_symbols"]["loaded"] == []
