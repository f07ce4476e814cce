"""Caches that live as long as the loaded vmlinux: cleared when gdb loads or
frees an objfile (a new `file`, `symbol-file`, or a relocation).  Outside
gdb (unit tests) they are plain dicts."""


class ObjfileCache(dict):
    def __init__(self):
        super().__init__()
        try:
            import gdb
        except ImportError:
            return
        gdb.events.new_objfile.connect(lambda *_: self.clear())
        if hasattr(gdb.events, "free_objfile"):
            gdb.events.free_objfile.connect(lambda *_: self.clear())
