"""`set kx ...` / `show kx ...` parameters."""
import gdb

from gdbext import settings


class _SetKx(gdb.Command):
    """Set kx options: color, msr-read, trace-plugin, debug."""

    def __init__(self):
        super().__init__("set kx", gdb.COMMAND_DATA, prefix=True)


class _ShowKx(gdb.Command):
    """Show kx options: color, msr-read, trace-plugin, debug."""

    def __init__(self):
        super().__init__("show kx", gdb.COMMAND_DATA, prefix=True)


class ColorParam(gdb.Parameter):
    """Colour kx's text output: on, off, or auto (when gdb styles a terminal)."""

    set_doc = "Set whether kx colours its output."
    show_doc = "Show whether kx colours its output."

    def __init__(self):
        super().__init__("kx color", gdb.COMMAND_DATA, gdb.PARAM_ENUM, ["on", "off", "auto"])
        self.value = settings.get("color")

    def get_set_string(self):
        settings.set_value("color", self.value)
        return ""

    def get_show_string(self, svalue):
        return f"kx colour is {svalue}."


class MsrReadParam(gdb.Parameter):
    """How kx reads MSRs the gdbstub does not expose.
inject: execute `rdmsr` in the guest (TCG, ring 0), restoring everything after.
off: never touch the guest; report the value the kernel is expected to have."""

    set_doc = "Set how kx reads MSRs the gdbstub does not expose."
    show_doc = "Show how kx reads MSRs the gdbstub does not expose."

    def __init__(self):
        super().__init__("kx msr-read", gdb.COMMAND_DATA, gdb.PARAM_ENUM, ["inject", "off"])
        self.value = settings.get("msr-read")

    def get_set_string(self):
        settings.set_value("msr-read", self.value)
        return ""

    def get_show_string(self, svalue):
        return f"kx reads unexposed MSRs by: {svalue}."


class TracePluginParam(gdb.Parameter):
    """The control socket of the kxtrace QEMU plugin, for `kx trace --engine plugin`.
QEMU must have been started with `-plugin kxtrace.so,sock=SOCKET` (./scripts/lab
qemu-args --trace-plugin SOCKET prints that prefix; ./scripts/lab boot --trace-plugin
boots a guest with it).  Empty: no plugin; kx trace then uses its breakpoint loop."""

    set_doc = "Set the kxtrace plugin's control socket."
    show_doc = "Show the kxtrace plugin's control socket."

    def __init__(self):
        super().__init__("kx trace-plugin", gdb.COMMAND_DATA, gdb.PARAM_OPTIONAL_FILENAME)
        self.value = settings.get("trace-plugin")

    def get_set_string(self):
        settings.set_value("trace-plugin", self.value or "")
        return ""

    def get_show_string(self, svalue):
        return f"kx's trace plugin socket is {svalue or '(none)'}."


class DebugParam(gdb.Parameter):
    """Show Python tracebacks for kx's internal errors (for kx developers)."""

    set_doc = "Set kx debugging."
    show_doc = "Show kx debugging."

    def __init__(self):
        super().__init__("kx debug", gdb.COMMAND_MAINTENANCE, gdb.PARAM_BOOLEAN)
        self.value = False

    def get_set_string(self):
        settings.set_value("debug", self.value)
        return ""

    def get_show_string(self, svalue):
        return f"kx debugging is {svalue}."


class GuestKernelParam(gdb.Parameter):
    """With no vmlinux, load the running kernel's own symbols and types
(kallsyms and BTF, `kx kernel`) at the first stop of a connection.
auto: do it; off: only on `kx kernel --load`."""

    set_doc = "Set whether kx loads the guest's own symbols and types when gdb has no vmlinux."
    show_doc = "Show whether kx loads the guest's own symbols and types when gdb has no vmlinux."

    def __init__(self):
        super().__init__("kx guest-kernel", gdb.COMMAND_DATA, gdb.PARAM_ENUM, ["auto", "off"])
        self.value = settings.get("guest-kernel")

    def get_set_string(self):
        settings.set_value("guest-kernel", self.value)
        return ""

    def get_show_string(self, svalue):
        return f"kx loads the guest's own symbols with no vmlinux: {svalue}."


def register():
    _SetKx()
    _ShowKx()
    ColorParam()
    MsrReadParam()
    TracePluginParam()
    DebugParam()
    GuestKernelParam()
