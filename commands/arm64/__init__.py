"""arm64's CPU-state commands: kx sysregs and kx vectors.  Registered by
gdbext.arch.arm64 (Arm64.register_commands); the data comes from
gdbext.arch.arm64.cpu_reports."""
from .. import register_modules
from ..base import KxCommand, add_cpu_option

MODULES = ("sysregs", "vectors")


class Arm64CpuStateCommand(KxCommand):
    """A decoder of one arm64 vCPU's state (--cpu): it refuses another
    architecture's target."""
    architecture = "arm64"
    needs_kernel_match = False

    def arguments(self, p):
        add_cpu_option(p)


def register() -> None:
    register_modules(__name__, MODULES)
