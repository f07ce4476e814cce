"""A task's credentials: the ids, the supplementary groups and the
capability sets of task->cred (include/linux/cred.h, Linux 6.1 and 6.12).

task->cred is what the task acts with (its subjective credentials);
task->real_cred is what others see when they act on it.  They differ only
while an override is in force (override_creds(), as in nfsd or an
overlayfs copy-up), which kx reports.  The ids are kernel ids (kuid_t,
kgid_t): the values in the initial user namespace.
"""
from typing import Dict, Optional

from gdbext import errors
from gdbext.decoders import capabilities
from gdbext.kernel import backend, symbols, types
from gdbext.kernel.structs import Member, StructReader

_IDS = ("uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid")
_CAPS = {"inheritable": "cap_inheritable", "permitted": "cap_permitted", "effective": "cap_effective",
         "bounding": "cap_bset", "ambient": "cap_ambient"}
_MAX_GROUPS_SHOWN = 64

TASK_CRED = StructReader("struct task_struct", (
    Member("cred", ("cred",)),
    Member("real_cred", ("real_cred",)),
))
# kuid_t/kgid_t are { uid_t val; } (include/linux/uidgid.h); without
# CONFIG_MULTIUSER there is no struct around them, hence the second path.
CRED = StructReader("struct cred", tuple(
    Member(i, (f"{i}.val", i)) for i in _IDS) + tuple(
    Member(key, (member,), required=(key != "ambient")) for key, member in _CAPS.items()) + (
    Member("securebits", ("securebits",), required=False),
    Member("group_info", ("group_info",), required=False),
))
GROUP_INFO = StructReader("struct group_info", (Member("ngroups", ("ngroups",), "s"),))


def last_cap(cpu=None) -> Optional[int]:
    """The kernel's CAP_LAST_CAP, from its `cap_last_cap` variable
    (kernel/sysctl.c, /proc/sys/kernel/cap_last_cap), or None."""
    address = symbols.lookup("cap_last_cap")
    if address is None:
        return None
    try:
        value = int.from_bytes(backend.read_kernel(address, 4, cpu), "little")
    except errors.MemoryUnreadable:
        return None
    return value if value < 64 else None


def _groups(address: int, cpu) -> Dict:
    info = GROUP_INFO.read(address, cpu)
    count = info["ngroups"]
    shown = max(0, min(count, _MAX_GROUPS_SHOWN))
    gids = []
    if shown and types.has_member("struct group_info", "gid"):
        raw = backend.read_kernel(address + types.offsetof("struct group_info", "gid"), 4 * shown, cpu)
        gids = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]
    return {"count": count, "gids": gids, "truncated": count > shown}


def task_creds(task_address: int, cpu=None) -> Dict:
    """{cred, real_cred, overridden, ids..., groups, caps, last_cap}."""
    ptrs = TASK_CRED.read(task_address, cpu)
    if not ptrs["cred"]:
        raise errors.KxError(f"task {task_address:#x} has no credentials (task->cred is NULL)")
    c = CRED.read(ptrs["cred"], cpu)
    last = last_cap(cpu)
    out = {"cred": ptrs["cred"], "real_cred": ptrs["real_cred"],
           "overridden": ptrs["real_cred"] != ptrs["cred"]}
    out.update({i: c[i] for i in _IDS})
    out["securebits"] = c["securebits"]
    out["groups"] = _groups(c["group_info"], cpu) if c["group_info"] else None
    out["caps"] = capabilities.decode_sets({key: c[key] for key in _CAPS}, last)
    out["last_cap"] = last
    return out
