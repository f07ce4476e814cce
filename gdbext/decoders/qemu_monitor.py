"""Parsers for QEMU monitor text (`info registers`, `info cpus`).  Pure."""
import re

_SEG_RX = re.compile(r"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=\s*([0-9a-f]{4}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", re.M)
_TABLE_RX = re.compile(r"^(GDT|IDT)=\s*([0-9a-f]+) ([0-9a-f]+)", re.M)
_REG_RX = re.compile(r"\b([A-Z][A-Z0-9]{1,3})=([0-9a-f]{8,16})\b")


def parse_info_registers(text: str) -> dict:
    """{"rip": int, ..., "efer": int, "tr_seg": {selector, base, limit, flags},
    "gdt": {base, limit}, "idt": {base, limit}}."""
    regs = {}
    for name, value in _REG_RX.findall(text):
        regs.setdefault(name.lower(), int(value, 16))
    for name, sel, base, limit, flags in _SEG_RX.findall(text):
        regs[name.lower() + "_seg"] = {"selector": int(sel, 16), "base": int(base, 16),
                                       "limit": int(limit, 16), "flags": int(flags, 16)}
    for name, base, limit in _TABLE_RX.findall(text):
        regs[name.lower()] = {"base": int(base, 16), "limit": int(limit, 16)}
    m = re.search(r"EFER=([0-9a-f]+)", text)
    if m:
        regs["efer"] = int(m.group(1), 16)
    # The one-digit state flags on the RFL line: II (interrupt shadow after
    # sti / mov ss, SDM Vol.3A 6.8.3), HLT (halted), SMM, A20.
    for name, value in re.findall(r"\b(II|HLT|SMM|A20)=([01])\b", text):
        regs[name.lower()] = int(value)
    return regs


def parse_info_cpus(text: str) -> dict:
    """{"cpus": [0, 1, ...], "current": n} from `info cpus`."""
    cpus, current = [], None
    for star, n in re.findall(r"^([ *])\s*CPU #(\d+)", text, re.M):
        cpus.append(int(n))
        if star == "*":
            current = int(n)
    return {"cpus": cpus, "current": current}


_A64_REG_RX = re.compile(r"\b(PC|SP|X\d\d)=([0-9a-f]{16})\b")
_A64_PSTATE_RX = re.compile(r"\bPSTATE=([0-9a-f]{8}) (\S+) (EL\d[th])")


def parse_info_registers_aarch64(text: str) -> dict:
    """QEMU's aarch64 `info registers` (target/arm/cpu.c
    aarch64_cpu_dump_state): {"pc", "x0".."x30", "sp" (the SP of the current
    EL), "pstate", "mode" ("EL1h")}."""
    regs = {}
    for name, value in _A64_REG_RX.findall(text):
        key = name.lower() if not name.startswith("X") else f"x{int(name[1:])}"
        regs.setdefault(key, int(value, 16))
    m = _A64_PSTATE_RX.search(text)
    if m:
        regs["pstate"] = int(m.group(1), 16)
        regs["mode"] = m.group(3)
    return regs


_MI_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


def mi_target_stream_text(text: str) -> str:
    """What `gdb.execute("monitor ...", to_string=True)` captured, as the
    monitor printed it: gdb 18 running under MI hands back its target-stream
    records (`@"..."` lines, C-escaped) instead of the text.  Other text is
    returned unchanged."""
    lines = [l for l in text.splitlines() if l]
    if not lines or not all(l.startswith('@"') and l.endswith('"') for l in lines):
        return text
    out = []
    for line in lines:
        body, i = line[2:-1], 0
        while i < len(body):
            c = body[i]
            if c == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                if nxt in "01234567":   # \ooo: up to three octal digits
                    j = i + 1
                    while j < min(len(body), i + 4) and body[j] in "01234567":
                        j += 1
                    out.append(chr(int(body[i + 1:j], 8)))
                    i = j
                    continue
                out.append(_MI_ESCAPES.get(nxt, nxt))
                i += 2
                continue
            out.append(c)
            i += 1
    return "".join(out)

