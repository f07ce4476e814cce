"""kx's user settings.  The gdb Parameters live in commands/params.py; this
module holds their values so the lower layers can read them without gdb."""
import os
import sys

# trace-plugin: the kxtrace plugin's control socket ("" = none).
_values = {"color": "auto", "msr-read": "inject", "debug": False, "trace-plugin": "", "guest-kernel": "auto"}


def set_value(name, value):
    _values[name] = value


def get(name):
    return _values[name]


def debug() -> bool:
    return bool(_values["debug"])


def color_enabled() -> bool:
    mode = _values["color"]
    if mode == "on":
        return True
    if mode == "off":
        return False
    try:
        import gdb
        if not gdb.parameter("style enabled"):
            return False
    except Exception:
        pass
    return sys.stdout.isatty() and os.environ.get("TERM", "dumb") != "dumb"
