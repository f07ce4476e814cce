"""Capability sets (kernel_cap_t) by name.

The names and numbers are include/uapi/linux/capability.h's, identical in
Linux 6.1 and 6.12 (CAP_LAST_CAP = CAP_CHECKPOINT_RESTORE = 40).  The
kernel's own CAP_LAST_CAP comes from its `cap_last_cap` variable (what
/proc/sys/kernel/cap_last_cap shows), so a newer kernel's extra bits are
reported by number rather than dropped.  kernel_cap_t is `__u32 cap[2]` up
to 6.2 and `u64 val` from 6.3 ("capability: just use a 'u64' instead of a
'u32[2]' array"): both are the same 64-bit little-endian mask.
"""
from typing import Dict, List, Optional

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
KNOWN_LAST_CAP = len(CAP_NAMES) - 1
SETS = ("effective", "permitted", "inheritable", "bounding", "ambient")


def cap_name(bit: int) -> str:
    return CAP_NAMES[bit] if bit < len(CAP_NAMES) else f"CAP_{bit}"


def decode(mask: int, last_cap: Optional[int] = None) -> Dict:
    """{value, names, count, all, missing, invalid}: the capabilities in
    `mask`; `all` when every one up to `last_cap` is set; `missing`, the
    ones not set when most are (a bounding set is read as "all but ...");
    `invalid`, bits above `last_cap` (the kernel never sets them)."""
    last = KNOWN_LAST_CAP if last_cap is None else last_cap
    bits = [b for b in range(64) if mask >> b & 1]
    valid = [b for b in bits if b <= last]
    missing = [cap_name(b) for b in range(last + 1) if not mask >> b & 1]
    return {"value": mask, "names": [cap_name(b) for b in valid], "count": len(valid),
            "all": not missing, "missing": missing if len(valid) > (last + 1) // 2 else None,
            "invalid": [b for b in bits if b > last]}


def summary(decoded: Dict) -> str:
    """`none`, `all 41`, `all but CAP_SYS_MODULE`, `CAP_KILL CAP_NET_RAW`."""
    if not decoded["count"] and not decoded["invalid"]:
        text = "none"
    elif decoded["all"]:
        text = f"all {decoded['count']}"
    elif decoded["missing"] is not None:
        text = "all but " + " ".join(decoded["missing"])
    else:
        text = " ".join(decoded["names"])
    if decoded["invalid"]:
        text += "  (bits beyond CAP_LAST_CAP: " + " ".join(str(b) for b in decoded["invalid"]) + ")"
    return text


def decode_sets(masks: Dict[str, Optional[int]], last_cap: Optional[int] = None) -> Dict[str, Optional[Dict]]:
    """Each of SETS that `masks` has, decoded (None where the kernel has no
    such set, as ambient before 4.3)."""
    return {s: None if masks.get(s) is None else decode(masks[s], last_cap) for s in SETS}


def names_to_mask(names: List[str]) -> int:
    mask = 0
    for n in names:
        mask |= 1 << CAP_NAMES.index(n)
    return mask
