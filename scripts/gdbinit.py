"""Load kx into any gdb from this checkout:  (gdb) source scripts/gdbinit.py

gdb embeds Debian's /usr/bin/python3, which does not see pyenv's or pip's user
site-packages; kx's venv (made by ./scripts/lab bootstrap, or $KX_VENV) is
added to sys.path so pygments and pyelftools import.  kx works without them
(no colour, no ELF checks) if the venv is missing.
"""
import glob
import os
import sys
import time

_t0 = time.perf_counter()
try:
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
except NameError:  # very old gdb: no __file__ for sourced scripts
    _root = os.getcwd()

_venv = os.environ.get("KX_VENV") or os.path.join(_root, ".venv")
_pyver = "python%d.%d" % sys.version_info[:2]
for _sp in glob.glob(os.path.join(_venv, "lib", _pyver, "site-packages")):
    if _sp not in sys.path:
        sys.path.append(_sp)
if _root not in sys.path:
    sys.path.insert(0, _root)

import gdbext  # noqa: E402  (registers the commands)

gdbext.LOAD_SECONDS = time.perf_counter() - _t0
