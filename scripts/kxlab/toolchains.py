"""Other gdbs for the lab and the tests: Debian 13's (16.3, Python 3.13) and
sid's (18.x, Python 3.13) next to the system's 13.1.

They need a newer C library than Debian 12's, so each lives in a minimal
chroot made by debootstrap from the archive the system's apt sources name
(kxlab/aptstate.py), cached under $KX_CACHE/chroots/<suite>.  gdb runs in it
through `unshare -m` (a private mount namespace, so nothing is left mounted)
with the checkout, the cache and /tmp bound at their own paths, so every
path the lab hands gdb (vmlinux, gdbinit.py, --out files) is the same inside.
The chroot's gdb loads kx with its own Python and Debian's python3-pygments
and python3-pyelftools.

KX_GDB picks the gdb: `system` (default), `trixie` or `sid`.
"""
import os
import pathlib
import shutil
import subprocess
import sys

from . import aptstate, bootstrap, paths

SUITES = {"trixie": "Debian 13", "sid": "Debian unstable"}
# gdb-multiarch for the arm64 guests (Debian's gdb knows only x86).
PACKAGES = ("gdb", "gdb-multiarch", "python3-pygments", "python3-pyelftools")
_READY = ".kx-ready"


def selected() -> str:
    """The gdb KX_GDB asks for: `system`, or a suite of SUITES."""
    choice = os.environ.get("KX_GDB", "system") or "system"
    if choice != "system" and choice not in SUITES:
        raise SystemExit(f"lab: KX_GDB={choice!r}: use system, {', '.join(SUITES)}")
    return choice


def chroot_dir(suite: str) -> pathlib.Path:
    return paths.cache_dir() / "chroots" / suite


def ensure(suite: str) -> pathlib.Path:
    """The suite's chroot with gdb, made once (about 2.5 min, 330 MB)."""
    root = chroot_dir(suite)
    if (root / _READY).exists():
        _add_missing_packages(root)
        return root
    bootstrap.ensure_apt()   # debootstrap
    staging = root.with_name(root.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    bootstrap.log(f"debootstrap {suite} with {', '.join(PACKAGES)} (once)")
    proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                           suite, str(staging), aptstate.system_archive()],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lab: debootstrap {suite} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    version = subprocess.run(["chroot", str(staging), "gdb", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    (staging / _READY).write_text(version + "\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return root


def _add_missing_packages(root: pathlib.Path) -> None:
    """A chroot made before a package joined PACKAGES gets it with its own apt."""
    missing = [p for p in PACKAGES if not (root / "var/lib/dpkg/info" / f"{p}.list").exists()]
    if not missing:
        return
    bootstrap.log(f"adding {', '.join(missing)} to the {root.name} chroot (once)")
    enter = [sys.executable, str(pathlib.Path(__file__).with_name("inchroot.py")), str(root), "--"]
    opts = _host_release_checks()
    for step in (["apt-get", *opts, "update", "-qq"], ["apt-get", *opts, "install", "-y", "-qq", *missing]):
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", *enter, *step],
                              capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if proc.returncode != 0:
            raise SystemExit(f"lab: {' '.join(step)} in {root} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _host_release_checks() -> list:
    """The machine's own apt policy on Release dates, for the chroot's apt:
    a mirror that serves frozen suites is configured on the host with
    Check-Valid-Until off, and the chroot has no such configuration."""
    out = []
    for key in ("Acquire::Check-Valid-Until", "Acquire::Check-Date"):
        value = subprocess.run(["apt-config", "dump", key], capture_output=True, text=True).stdout
        for line in value.splitlines():
            if line.startswith(key + " "):
                out += ["-o", f"{key}={line.split(' ', 1)[1].strip().strip(';').strip(chr(34))}"]
    return out


def version(suite) -> str:
    """`GNU gdb (Debian 16.3-1) 16.3` for a ready chroot (a suite name or
    its directory)."""
    root = suite if isinstance(suite, pathlib.Path) else chroot_dir(suite)
    return (root / _READY).read_text().strip()


def binds() -> list:
    """Host directories gdb needs at the same path inside the chroot."""
    out = [paths.REPO, paths.cache_dir(), pathlib.Path("/tmp")]
    run_dir = os.environ.get("KX_RUN_DIR")
    if run_dir:
        out.append(pathlib.Path(run_dir))
    return [p.resolve() for p in out]


def gdb_prefix(arch: str = "x86_64") -> list:
    """The argv that starts gdb (before its own arguments) for KX_GDB; the
    system's gdb knows only x86, so other guests get gdb-multiarch."""
    suite = selected()
    if suite == "system":
        name = "gdb" if arch == "x86_64" else "gdb-multiarch"
        return [shutil.which(name) or name]
    root = ensure(suite)
    enter = pathlib.Path(__file__).with_name("inchroot.py")
    args = ["unshare", "-m", "--propagation", "private", sys.executable, str(enter), str(root)]
    for b in binds():
        args += ["--bind", str(b)]
    return args + ["--", "gdb" if arch == "x86_64" else "gdb-multiarch"]


def index_cache_suffix() -> str:
    """gdb's index cache per gdb: their formats differ between releases."""
    suite = selected()
    return "" if suite == "system" else f"-{suite}"
