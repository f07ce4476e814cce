"""The page walk of one address as `kx pagewalk` shows it: through the page
tables a vCPU runs on, a given root, or a task's mm, and under KPTI through
both halves of the PGD pair.  The walk itself is the machine layer's
(machine.translate, i.e. the architecture's, i.e. decoders/paging.py)."""
from typing import Dict, Optional, Tuple

from gdbext import arch, errors
from gdbext import machine
from gdbext.kernel import symbols, tasks, types


def task_root(spec, cpu: int) -> Tuple[int, Dict]:
    """The physical page-table root of a task's mm (mm->pgd is a direct-map
    pointer; its physical address comes from a walk of the kernel's own
    tables).  A kernel thread has no mm: its active_mm (the one it borrowed)
    is used, and said."""
    from gdbext.kernel import vdso
    task = tasks.find(spec, cpu)
    info = {"pid": task.pid, "comm": task.comm, "address": task.address, "mm": task.mm, "note": None}
    mm = task.mm or task.active_mm
    if not mm:
        raise errors.KxError(f"pid {task.pid} ({task.comm}) has neither an mm nor an active_mm")
    if not task.mm:
        info["note"] = f"pid {task.pid} is a kernel thread: its borrowed active_mm {mm:#x}"
    pgd = machine.read_u64(mm + types.offsetof("struct mm_struct", "pgd"), cpu)
    return vdso.task_page_table(pgd, cpu), info


def _one_view(address: int, cpu: int, name: str, root: int, current: int) -> Dict:
    a = arch.current()
    regs = machine.registers(cpu)
    error = None
    try:
        out = a.describe_walk(address, regs, translation=machine.translate(address, cpu, root))
    except errors.DecodeError as exc:
        out, error = a.describe_walk(address, regs, fault=exc), str(exc)
    except errors.MemoryUnreadable as exc:
        out, error = a.describe_walk(address, regs), str(exc)
    active = a.root_address(root) == a.root_address(current)
    # An architecture with a root per address half (arm64) says which it walked.
    walked = out.pop("walked_root", None)
    if walked is not None and walked != a.root_address(root):
        root = walked
    out.update(name=name, root=root, active=active, error=error)
    return out


def walk(address: int, cpu: Optional[int] = None, root: Optional[int] = None, pid=None) -> Dict:
    cpu = machine.check_cpu(cpu)
    a = arch.current()
    regs = machine.registers(cpu)
    off = a.paging_off(regs)
    if off:
        raise errors.KxError(f"CPU {cpu} {off}")
    current = a.page_table_root(regs)
    task, source = None, "cpu"
    if pid is not None:
        root, task = task_root(pid, cpu)
        source = "task"
    elif root is not None:
        source = "root"
    else:
        root = current
    views = [_one_view(address, cpu, name, r, current) for name, r in a.page_table_views(root, regs, cpu)]
    return {"cpu": cpu, "address": address, "symbol": symbols.format_address(address), "source": source,
            "root_register": a.page_table_root_name,
            "task": task, "root": root, "views": views}
