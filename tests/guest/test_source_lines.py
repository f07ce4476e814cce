"""Kernel source lines at a stop: the lab points gdb at the cached kernel
source (kxlab/sources.py: substitute-path or directory, from the vmlinux's
DWARF), so the stop at entry_SYSCALL_64 shows its line of entry_64.S.

Ground truth: the kernel's own source file, read here: the line gdb names
follows SYM_CODE_START(entry_SYSCALL_64), and gdb prints that line's text.
"""
import os
import re

from tests.kernel_source import source_root

ENTRY_64 = "arch/x86/entry/entry_64.S"


def test_the_stop_at_entry_syscall_64_shows_its_line(kx, kernel_series):
    kx.run_to("entry_SYSCALL_64")
    info = kx.cmd("info line *$pc")
    m = re.search(r'Line (\d+) of "([^"]+)"', info)
    assert m and m.group(2).endswith(ENTRY_64), info
    line = int(m.group(1))
    with open(os.path.join(source_root(kernel_series), ENTRY_64)) as f:
        text = f.read().splitlines()
    start = next(i + 1 for i, l in enumerate(text) if l.startswith("SYM_CODE_START(entry_SYSCALL_64)"))
    assert start < line <= start + 4, (start, line)
    frame = kx.cmd("frame")
    assert "No such file" not in frame, frame
    assert f"{line}\t{text[line - 1]}" in frame, frame
    listing = kx.cmd("list *$pc")
    assert "SYM_CODE_START(entry_SYSCALL_64)" in listing, listing
