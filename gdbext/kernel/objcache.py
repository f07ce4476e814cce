"""Caches that live as long as the loaded vmlinux: cleared when gdb loads or
frees an objfile (a new `file`, `symbol-file`, or a relocation)."""
import gdb


class ObjfileCache(dict):
    def __init__(self):
        super().__init__()
        gdb.events.new_objfile.connect(lambda *_: self.clear())
        if hasattr(gdb.events, "free_objfile"):
            gdb.events.free_objfile.connect(lambda *_: self.clear())
