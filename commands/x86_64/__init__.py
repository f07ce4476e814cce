"""x86-64's CPU-state commands: kx msr, gdt, idt, tss and cr.  Registered by
gdbext.arch.x86_64 (X86_64.register_commands); the verdicts they show come
from gdbext.arch.x86_64.cpustate."""
from .. import register_modules
from ..base import KxCommand, add_cpu_option

MODULES = ("msr", "gdt", "idt", "tss", "cr")


class X86CpuStateCommand(KxCommand):
    """A decoder of one x86-64 vCPU's state (--cpu): it refuses another
    architecture's target, and runs on a vmlinux mismatch (without symbol
    names)."""
    architecture = ("x86_64", "i386")
    needs_kernel_match = False

    def arguments(self, p):
        add_cpu_option(p)


def register() -> None:
    register_modules(__name__, MODULES)
