"""arm64: every `kx` subcommand and $kx_* function fuzzed on the arm64
guest, stopped at el0t_64_sync, by the x86 fuzzer
(tests/guest/test_cli_fuzz.py fuzz_every_command: the generator, the
fences around break and trace, the checks).

Checks, per input: no traceback and no "internal error", an error is one
line, --json prints one JSON object.  Per subcommand: gdb still evaluates
`print 1+1`, and the guest is exactly as before, read without kx
(tests/guest_arm64/snapshot.py: every vCPU's `info registers` from QEMU's
monitor, its system registers from the stub and the code at its pc, the
kernel text's SHA-1, gdb's breakpoints, scheduler-locking, PhyMemMode;
break and trace resume the guest: their registers legitimately move).
"""
import os

import pytest

from tests.guest.test_cli_fuzz import fuzz_every_command
from tests.guest.test_matrix import help_subcommands

from .snapshot import Arm64Snapshotter
from .test_entry import SVC64_AT_ENTRY

pytestmark = pytest.mark.guest
PER_COMMAND = int(os.environ.get("KX_ARM64_FUZZ_N", "10"))
PER_FUNCTION = 3


def test_cli_fuzz_leaves_the_arm64_guest_as_it_was(a64, arm64_series, tmp_path):
    a64.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    assert {"sysregs", "vectors", "task", "regs", "event", "syscalls"} <= set(help_subcommands(a64))
    fuzz_every_command(a64, f"arm64-{arm64_series}", Arm64Snapshotter(a64), tmp_path, PER_COMMAND, PER_FUNCTION)
