"""Where things live: the checkout, the cache, the venv."""
import os
import sys
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the pure gdbext.decoders serve the lab too
SCRIPTS = REPO / "scripts"
GUEST_SRC = SCRIPTS / "guest"
GDBINIT = SCRIPTS / "gdbinit.py"
REQUIREMENTS = REPO / "requirements.txt"

# gdb embeds Debian's /usr/bin/python3, so the venv that gives gdb pygments
# and pyelftools must be made by that interpreter.
SYSTEM_PYTHON = "/usr/bin/python3"


def cache_dir() -> pathlib.Path:
    """$KX_CACHE, default ~/.cache/kx: kernels, initramfs, gdb's index cache."""
    path = pathlib.Path(os.environ.get("KX_CACHE") or os.path.expanduser("~/.cache/kx"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def venv_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KX_VENV") or REPO / ".venv")


def run_dir() -> pathlib.Path:
    # scripts/test points KX_RUN_DIR at a directory of its own, so that its
    # leftover-QEMU check sees only the guests this run started.
    override = os.environ.get("KX_RUN_DIR")
    path = pathlib.Path(override) if override else cache_dir() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def index_cache_dir() -> pathlib.Path:
    path = cache_dir() / "gdb-index"
    path.mkdir(parents=True, exist_ok=True)
    return path
