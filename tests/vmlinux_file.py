"""Ground truth read straight from a vmlinux file (pyelftools), for tests:
never through kx's own code."""
import struct

from elftools.elf.elffile import ELFFile


def vdso_image(vmlinux, image_address: int) -> bytes:
    """The bytes of the vDSO image whose struct vdso_image (asm/vdso.h: `data`
    and `size` come first) is at `image_address` (System.map)."""
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        loads = [(s["p_vaddr"], s["p_filesz"], s["p_offset"]) for s in elf.iter_segments()
                 if s["p_type"] == "PT_LOAD"]

        def read_va(va, n):
            for vaddr, filesz, off in loads:
                if vaddr <= va and va + n <= vaddr + filesz:
                    f.seek(off + va - vaddr)
                    return f.read(n)
            raise AssertionError(f"{va:#x} is not in {vmlinux}'s PT_LOADs")
        data, size = struct.unpack("<QQ", read_va(image_address, 16))
        return read_va(data, size)


def section_address(vmlinux, name: str):
    """sh_addr of section `name`, or None when the file has no such section."""
    with open(vmlinux, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return None if sec is None else sec["sh_addr"]


def read(vmlinux, address: int, n: int) -> bytes:
    """`n` bytes at link address `address`, from the file's PT_LOAD segments."""
    with open(vmlinux, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= address and address + n <= seg["p_vaddr"] + seg["p_filesz"]:
                f.seek(seg["p_offset"] + address - seg["p_vaddr"])
                return f.read(n)
    raise AssertionError(f"{address:#x} is not in a PT_LOAD segment of {vmlinux}")


def symbol_values(vmlinux, names) -> dict:
    """{name: st_value} from the file's .symtab for each of `names` it has."""
    wanted = set(names)
    with open(vmlinux, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name: s["st_value"] for s in symtab.iter_symbols() if s.name in wanted}


def system_map(path) -> list:
    """[(address, type letter, name)] of a System.map."""
    out = []
    with open(path) as f:
        for line in f:
            a, letter, name = line.split()[:3]
            out.append((int(a, 16), letter, name))
    return out


def dwarf_offsets(vmlinux, pairs) -> dict:
    """{(struct, path): byte offset or None} from the file's DWARF through
    gdb's own expression evaluator (&((struct X *)0)->path), never kx."""
    exprs = [f"(unsigned long)&(({s} *)0)->{p}" for s, p in pairs]
    return dict(zip(map(tuple, pairs), gdb_values(vmlinux, exprs)))


def gdb_values(path, exprs) -> list:
    """The integer value gdb gives each expression with `path` loaded (None
    where gdb says it is an error)."""
    import json
    import subprocess
    import tempfile
    from kxlab import gdbrun
    script = (
        "import gdb, json\n"
        f"exprs = {list(exprs)!r}\n"
        "out = []\n"
        "for e in exprs:\n"
        "    try:\n"
        "        out.append(int(gdb.parse_and_eval(e)))\n"
        "    except gdb.error:\n"
        "        out.append(None)\n"
        "print('KXJSON' + json.dumps(out))\n")
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(script)
        f.flush()
        argv = gdbrun.gdb_argv(vmlinux=path, load_kx=False, batch=True, extra_ex=[f"source {f.name}"])
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
    return json.loads(out.split("KXJSON", 1)[1].splitlines()[0])
