"""Caches that live as long as the loaded vmlinux: cleared when gdb loads or
frees an objfile (a new `file`, `symbol-file`, or a relocation)."""
from gdbext.machine import hooks


class ObjfileCache(dict):
    def __init__(self):
        super().__init__()
        hooks.connect(self.on_objfile, "objfile")

    def on_objfile(self, _event=None) -> None:
        # gdb passes the event; dict.clear takes no argument.
        self.clear()
