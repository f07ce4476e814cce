"""The vDSO and vvar of a task, as the kernel set them up.

Layout facts (arch/x86/entry/vdso/vma.c, identical in 6.1 and 6.12 except
where noted):
- map_vdso() maps the image's text at mm->context.vdso and the vvar area
  right below it: [vdso + image->sym_vvar_start, vdso).  Both are special
  mappings: vma->vm_private_data points at vdso_mapping / vvar_mapping,
  whose .name is "[vdso]" / "[vvar]" (mm/mmap.c _install_special_mapping).
- 6.15+ (the generic vDSO data store, lib/vdso/datastore.c) dropped
  sym_vvar_start: the data pages below the text are two special mappings,
  [vvar] (vdso_vvar_mapping) and [vvar_vclock] (vvar_vclock_mapping), of
  __VDSO_PAGES pages in all, a macro; kx finds them as the VMAs below the text.
- mm->context.vdso_image says which image: one of Arch.vdso_images
  (x86-64: &vdso_image_64, _x32 or _32).
- vdso_fault() maps the pages of image->data itself: the task sees the
  kernel's copy, whose alternatives init_vdso_image() patched at boot.  A
  page the task never touched has no PTE yet; its content is still defined
  (it is the kernel's page), so kx reads it from image->data and says so.
- VMAs live in the mm's maple tree (mm->mm_mt) since 6.1 ("mm: start
  tracking VMAs with maple tree"); up to 6.0 (5.10) in the red-black tree
  mm->mm_rb, each vm_area_struct linked through its vm_rb.
What only one architecture has (x86-64: the compat __kernel_vsyscall
trampoline, the legacy vsyscall page) comes from Arch.vdso_report.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from gdbext import arch, errors
from gdbext.decoders import vdso as vdec
from gdbext.decoders.paging import PAGE_SIZE_4K
from gdbext.kernel import symbols, tasks, vmlinux
from gdbext.kernel.objcache import ObjfileCache
from gdbext.kernel.structs import Member, StructReader
from gdbext.kernel.vmas import VMA as _VMA, find_vma, find_vma_rbtree  # noqa: F401 (arch/*/vdso.py)
from gdbext import machine

# vm_flags bits (include/linux/mm.h, 6.1 and 6.12).
VM_FLAG_NAMES = ((0x1, "read"), (0x2, "write"), (0x4, "exec"), (0x8, "shared"),
                 (0x10, "mayread"), (0x20, "maywrite"), (0x40, "mayexec"),
                 (0x400, "pfnmap"), (0x4000, "io"), (0x04000000, "dontdump"))
_MM = StructReader("struct mm_struct", (
    Member("vdso", ("context.vdso",)),
    Member("vdso_image", ("context.vdso_image",), required=False),   # x86's; arm64 has none
    Member("pgd", ("pgd",)),
    # For Arch.vdso_report (x86-64: MM_CONTEXT_HAS_VSYSCALL), in the same read.
    Member("ctx_flags", ("context.flags",), required=False),
    Member("ia32_compat", ("context.ia32_compat",), required=False),    # up to 5.x
    Member("ma_root", ("mm_mt.ma_root",), required=False),
    Member("rb_root", ("mm_rb.rb_node",), required=False),             # up to 6.0
))
_IMAGE = StructReader("struct vdso_image", (
    Member("data", ("data",)),
    Member("size", ("size",)),
    Member("alt", ("alt",), required=False),
    Member("alt_len", ("alt_len",), required=False),
    Member("sym_vvar_start", ("sym_vvar_start",), "s", required=False),  # up to 6.14
    Member("sym_vvar_page", ("sym_vvar_page",), "s", required=False),
    Member("sym_pvclock_page", ("sym_pvclock_page",), "s", required=False),
    Member("sym_hvclock_page", ("sym_hvclock_page",), "s", required=False),
    Member("sym_timens_page", ("sym_timens_page",), "s", required=False),
    Member("sym___kernel_vsyscall", ("sym___kernel_vsyscall",), "s", required=False),
    Member("sym_int80_landing_pad", ("sym_int80_landing_pad",), "s", required=False),
))
_SPECIAL = StructReader("struct vm_special_mapping", (Member("name", ("name",)),))

_file_cache = ObjfileCache()


@dataclass
class Vma:
    start: int
    end: int
    flags: int
    special: Optional[str]      # "[vdso]" / "[vvar]" for special mappings
    address: int                # the vm_area_struct

    def to_dict(self):
        return {"address": self.address, "start": self.start, "end": self.end,
                "flags": self.flags,
                "flag_names": [n for bit, n in VM_FLAG_NAMES if self.flags & bit],
                "special": self.special}


@dataclass
class KernelImage:
    name: str                   # vdso_image_64 ...
    abi: str
    address: int                # the struct vdso_image
    data: int
    size: int
    fields: Dict[str, Optional[int]]


@dataclass
class TaskVdso:
    task: "tasks.Task"
    mm: int
    base: int
    vvar: int
    vvar_size: int
    kernel_image: KernelImage
    image: vdec.VdsoImage
    bytes_: bytes
    pages: List[dict]           # per page: offset, present, phys, kernel_phys, source
    image_matches_kernel: bool
    mismatched_bytes: int
    vmas: Dict[str, Optional[Vma]]
    file_image: Optional[dict]
    mm_fields: Dict[str, Optional[int]] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Page tables of a task that may not be running

def task_page_table(mm_pgd: int, cpu: int) -> int:
    """The physical address of mm->pgd (a direct-map pointer), found by
    walking the kernel page tables rather than assuming PAGE_OFFSET."""
    return machine.translate(mm_pgd, cpu, machine.kernel_page_table(cpu)).phys


# ---------------------------------------------------------------------------
# VMAs (kernel/vmas.py)

def read_vma(vma: int, cpu: int, specials: Dict[int, str]) -> Vma:
    v = _VMA.read(vma, cpu)
    special = specials.get(v["vm_private_data"])
    return Vma(start=v["vm_start"], end=v["vm_end"], flags=v["vm_flags"], special=special, address=vma)


def _special_names(cpu: int) -> Dict[int, str]:
    """{&vdso_mapping: "[vdso]", &vvar_mapping: "[vvar]", ...} read from memory
    (6.15+: vdso_vvar_mapping and vvar_vclock_mapping instead of vvar_mapping)."""
    out = {}
    for sym in ("vdso_mapping", "vvar_mapping", "vdso_vvar_mapping", "vvar_vclock_mapping"):
        addr = symbols.lookup(sym)
        if addr is None:
            continue
        name_ptr = _SPECIAL.read(addr, cpu)["name"]
        try:
            out[addr] = machine.read_kernel(name_ptr, 16, cpu).split(b"\0", 1)[0].decode("ascii", "replace")
        except errors.MemoryUnreadable:
            out[addr] = sym
    out.update(arch.current().vdso_special_mappings(cpu))
    return out


# ---------------------------------------------------------------------------
# The kernel's images

def kernel_images() -> Dict[int, tuple]:
    """{address of struct vdso_image: (symbol, abi)} for the images this kernel has."""
    return {a: (name, abi) for name, abi, _label in arch.current().vdso_images
            if (a := symbols.lookup(name)) is not None}


def read_kernel_image(address: int, name: str, abi: str, cpu: int) -> KernelImage:
    v = _IMAGE.read(address, cpu)
    if not v["size"] or v["size"] % PAGE_SIZE_4K or v["size"] > vdec.MAX_IMAGE:
        raise errors.KxError(f"{name}.size = {v['size']:#x} is not a page multiple (wrong vmlinux?)")
    return KernelImage(name=name, abi=abi, address=address, data=v["data"], size=v["size"], fields=v)


def file_image(name: str) -> Optional[bytes]:
    """The image bytes as the vmlinux file has them (before the boot-time
    alternatives), found through the file's own struct vdso_image.data."""
    table = symbols.elf_table()
    if not isinstance(table, symbols.SymbolTable):
        return None
    key = (vmlinux.file_key(table.path), name)
    if key not in _file_cache:
        _file_cache[key] = _read_file_image(vmlinux.image(table.path), table.link_address(name))
    return _file_cache[key]


def _read_file_image(image, link: Optional[int]) -> Optional[bytes]:
    if link is None:
        return None
    try:
        w = getattr(image, "pointer_size", 8)    # void *data; unsigned long size
        (data,) = vmlinux.read_u64s(image.read, link + _IMAGE.offset("data"), 1, w)
        (size,) = vmlinux.read_u64s(image.read, link + _IMAGE.offset("size"), 1, w)
        if not 0 < size <= vdec.MAX_IMAGE:
            return None
        raw = image.read(data, size)
    except errors.DecodeError:
        return None
    return raw if len(raw) == size else None


# ---------------------------------------------------------------------------
# The task's vDSO

def no_vdso_reason(task) -> Optional[str]:
    if task.is_idle:
        return f"pid 0 ({task.comm}) is an idle task: it has no mm, hence no vDSO"
    if task.is_kernel_thread:
        return f"pid {task.pid} ({task.comm}) is a kernel thread: it has no mm, hence no vDSO"
    return None


def task_vdso(task, cpu: int) -> TaskVdso:
    why = no_vdso_reason(task)
    if why:
        raise errors.KxError(why)
    mm = _MM.read(task.mm, cpu)
    base = mm["vdso"]
    own = arch.current().vdso_kernel_image(task, cpu)
    if not base or not (own or mm["vdso_image"]):
        raise errors.KxError(f"pid {task.pid} ({task.comm}) has no vDSO mapped "
                             "(mm->context.vdso is NULL: vdso=0 on the command line?)")
    kimg = own or _image_of_mm(mm["vdso_image"], cpu)
    name, abi = kimg.name, kimg.abi
    warnings = []

    kernel_bytes = machine.read_kernel(kimg.data, kimg.size, cpu)
    pages, image_bytes = _task_pages(kimg, kernel_bytes, task_page_table(mm["pgd"], cpu), base, cpu)
    mismatched = sum(1 for a, b in zip(image_bytes, kernel_bytes) if a != b)
    if mismatched:
        warnings.append(f"{mismatched} bytes of the task's vDSO differ from {name}->data "
                        "(a debugger breakpoint COW'd a page, or the image was modified)")
    image = vdec.parse_vdso(image_bytes)
    expect_bits = 32 if abi == "32" else 64
    if image.bits != expect_bits:
        warnings.append(f"the mapped image is ELF{image.bits} but {name} serves the {abi}-bit ABI")

    specials = _special_names(cpu)
    vvar = _vvar_start(kimg, mm, base, cpu, specials, warnings)
    vmas = _vdso_vmas(mm, base, vvar, kimg.size, cpu, specials, warnings)
    fimg = _compare_file_image(name, kernel_bytes, image, warnings)
    return TaskVdso(task=task, mm=task.mm, base=base, vvar=vvar, vvar_size=base - vvar,
                    kernel_image=kimg, image=image, bytes_=image_bytes, pages=pages,
                    image_matches_kernel=(mismatched == 0 and len(image_bytes) == len(kernel_bytes)),
                    mismatched_bytes=mismatched, vmas=vmas, file_image=fimg, mm_fields=mm, warnings=warnings)


def _image_of_mm(image_ptr: int, cpu: int) -> KernelImage:
    """The struct vdso_image mm->context.vdso_image points at (x86)."""
    known = kernel_images()
    if image_ptr not in known:
        names = [n for n, _ in known.values()] or [n for n, _, _ in arch.current().vdso_images]
        raise errors.KxError(f"mm->context.vdso_image = {image_ptr:#x} is none of "
                             f"{', '.join(names)} (wrong vmlinux?)")
    name, abi = known[image_ptr]
    return read_kernel_image(image_ptr, name, abi, cpu)


def _task_pages(kimg: KernelImage, kernel_bytes: bytes, root: int, base: int, cpu: int):
    """(one dict per page of the task's mapping, the image bytes the task
    sees): a page without a PTE reads as the kernel's (vdso_fault() would
    map image->data's page)."""
    pages, chunks = [], []
    for off, phys, data in machine.read_pages(root, base, kimg.size, cpu):
        try:
            kphys = machine.translate(kimg.data + off, cpu, machine.kernel_page_table(cpu)).phys
        except errors.DecodeError:
            kphys = None
        ref = kernel_bytes[off:off + PAGE_SIZE_4K]
        source = "kernel" if data is None else "task"
        data = ref if data is None else data
        chunks.append(data)
        pages.append({"offset": off, "present": phys is not None, "phys": phys,
                      "kernel_phys": kphys, "same_page": phys is not None and phys == kphys,
                      "source": source, "matches_kernel": data == ref})
    return pages, b"".join(chunks)


def _vvar_start(kimg: KernelImage, mm, base: int, cpu: int, specials, warnings) -> int:
    """Where the vvar area below the text starts: image->sym_vvar_start up
    to 6.14; since 6.15 the lowest of the adjacent [vvar*] VMAs below it."""
    if kimg.fields["sym_vvar_start"] is not None:
        return base + kimg.fields["sym_vvar_start"]
    start = base
    if mm["ma_root"] is not None:
        for _ in range(8):
            vma = find_vma(mm["ma_root"], start - 1, cpu)
            v = read_vma(vma, cpu, specials) if vma else None
            if v is None or v.end != start or not (v.special or "").startswith("[vvar"):
                break
            start = v.start
    if start == base:
        warnings.append(f"{kimg.name} has no sym_vvar_start and no [vvar] VMA lies right below the text")
    return start


def _vdso_vmas(mm, base: int, vvar: int, size: int, cpu: int, specials,
               warnings) -> Dict[str, Optional[Vma]]:
    """The [vdso] and [vvar] VMAs from the mm's maple tree (6.1+) or
    red-black tree, and (6.15+) the further VMAs of the vvar area, keyed by
    their name ("vvar_vclock")."""
    vmas = {"vdso": None, "vvar": None}
    if mm["ma_root"] is not None:
        def find(addr):
            return find_vma(mm["ma_root"], addr, cpu)
    elif mm["rb_root"] is not None:
        def find(addr):
            return find_vma_rbtree(mm["rb_root"], addr, cpu)
    else:
        warnings.append("this kernel's mm_struct has neither mm_mt nor mm_rb: VMAs not shown")
        return vmas
    for key, addr in (("vdso", base), ("vvar", vvar)):
        vma = find(addr)
        if vma:
            v = read_vma(vma, cpu, specials)
            if v.start <= addr < v.end:
                vmas[key] = v
        if vmas[key] is None:
            warnings.append(f"no VMA covers the {key} address {addr:#x}")
    if vmas["vdso"] and (vmas["vdso"].start != base or vmas["vdso"].end - base != size):
        warnings.append("the [vdso] VMA does not span mm->context.vdso .. + image size")
    end = vmas["vvar"].end if vmas["vvar"] else base
    while end < base:
        vma = find(end)
        v = read_vma(vma, cpu, specials) if vma else None
        if v is None or v.start != end or not v.special:
            warnings.append(f"no special VMA continues the vvar area at {end:#x}")
            break
        vmas[v.special.strip("[]")] = v
        end = v.end
    return vmas


def _compare_file_image(name: str, kernel_bytes: bytes, image, warnings) -> Optional[dict]:
    """How the vmlinux file's copy of the image differs from the kernel's."""
    fbytes = file_image(name)
    if fbytes is None:
        return None
    diff = sum(1 for a, b in zip(fbytes, kernel_bytes) if a != b) + abs(len(fbytes) - len(kernel_bytes))
    try:
        fbuild = vdec.parse_vdso(fbytes).build_id
    except errors.DecodeError:
        fbuild = None
    if fbuild is not None and fbuild != image.build_id:
        warnings.append("the vDSO build-id differs from the vmlinux file's image: "
                        "is this vmlinux the running kernel?")
    return {"size": len(fbytes), "build_id": fbuild, "differing_bytes": diff,
            "build_id_matches": fbuild is not None and fbuild == image.build_id}


def report(task, cpu: int) -> dict:
    """Everything `kx vdso` shows, JSON-ready."""
    v = task_vdso(task, cpu)
    own = arch.current().vdso_report(v, cpu)
    img = v.image
    syms = [{"name": s.name, "address": v.base + s.value - img.load_address, "offset": s.value,
             "size": s.size, "type": s.type, "bind": s.bind, "version": s.version}
            for s in sorted(img.symbols, key=lambda s: (s.value, s.name)) if s.type == "func"]
    k = v.kernel_image
    return {
        "pid": task.pid, "tgid": task.tgid, "comm": task.comm, "task": task.address, "mm": v.mm,
        "abi": k.abi, "base": v.base, "end": v.base + k.size, "size": len(v.bytes_),
        "vvar": v.vvar, "vvar_size": v.vvar_size,
        "symbols": syms,
        "elf": {"class": img.bits, "machine": img.machine, "soname": img.soname,
                "versions": img.versions, "linux_version": img.linux_version,
                "linux_version_text": img.linux_version_text, "build_salt": img.build_salt},
        "build_id": img.build_id,
        "image_matches_kernel": v.image_matches_kernel,
        "mismatched_bytes": v.mismatched_bytes,
        "kernel_image": {"symbol": k.name, "address": k.address, "data": k.data, "size": k.size,
                         "sym_vvar_start": k.fields["sym_vvar_start"]},   # None on 6.15+
        "file_image": v.file_image,
        "pages": v.pages,
        "vmas": {key: (vma.to_dict() if vma else None) for key, vma in v.vmas.items()},
        **own,
        "warnings": v.warnings,
    }
