"""Install what the lab and the tests need on a fresh Debian bookworm machine.

Debian packages through apt (as root, `apt-get update` first), and a venv made
by the system python3 (the one gdb embeds) from the pinned requirements.
"""
import hashlib
import os
import shutil
import subprocess
import sys

from . import paths

# command -> Debian package that provides it
APT_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-i386": "qemu-system-x86",
    "gdb": "gdb",
    "as": "binutils",
    "ld": "binutils",
    "gcc": "gcc",
    "cpio": "cpio",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "debootstrap": "debootstrap",   # chroots with other gdbs (kxlab/toolchains.py)
    "xz": "xz-utils",          # tar -J: QEMU's source tarball (qemu10.plugin_header)
}
# Static glibc for the workload; ensurepip for the venv.
APT_FILES = {
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
    "/usr/lib32/libc.a": "gcc-multilib",    # gcc -m32 -static: the i386 guest's workload
    # glib's headers and pkg-config for the kxtrace plugin (kxlab/plugin.py)
    "/usr/include/glib-2.0/glib.h": "libglib2.0-dev",
    "/usr/bin/pkg-config": "pkgconf",
}
# What a guest of another architecture needs on top (command or file ->
# package).  Debian's gcc cross compilers conflict with gcc-multilib, so the
# arm64 userland is built by clang with the cross libc and binutils.
ARCH_APT_NEEDS = {
    "arm64": {
        "qemu-system-aarch64": "qemu-system-arm",
        "gdb-multiarch": "gdb-multiarch",
        "clang": "clang",
        "aarch64-linux-gnu-ld": "binutils-aarch64-linux-gnu",
        "arm-linux-gnueabihf-ld": "binutils-arm-linux-gnueabihf",
        "/usr/aarch64-linux-gnu/lib/libc.a": "libc6-dev-arm64-cross",
        "/usr/lib/gcc-cross/aarch64-linux-gnu": "libgcc-12-dev-arm64-cross",
    },
}


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def _venv_usable() -> bool:
    probe = subprocess.run([paths.SYSTEM_PYTHON, "-c", "import venv, ensurepip"],
                           capture_output=True)
    return probe.returncode == 0


def missing_apt_packages() -> list:
    missing = {pkg for tool, pkg in APT_TOOLS.items() if shutil.which(tool) is None}
    missing |= {pkg for f, pkg in APT_FILES.items() if not os.path.exists(f)}
    if not os.path.exists(paths.SYSTEM_PYTHON):
        missing.add("python3")
    if os.path.exists(paths.SYSTEM_PYTHON) and not _venv_usable():
        missing.add("python3-venv")
    return sorted(missing)


_apt_updated = False


def apt_updated() -> bool:
    return _apt_updated


def apt_update() -> None:
    global _apt_updated
    if not _apt_updated:
        log("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        _apt_updated = True


def ensure_apt() -> None:
    install(missing_apt_packages())


def ensure_arch(arch: str) -> None:
    """The packages a guest of `arch` needs beyond the x86-64 lab's."""
    needs = ARCH_APT_NEEDS.get(arch, {})
    install(sorted({pkg for need, pkg in needs.items()
                    if not (os.path.exists(need) if need.startswith("/") else shutil.which(need))}))


def install(missing: list) -> None:
    """apt-get install `missing` (as root), or say how."""
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"lab: missing Debian packages {' '.join(missing)}; "
                         f"run: sudo apt-get install {' '.join(missing)}")
    apt_update()
    log(f"apt-get install {' '.join(missing)}")
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _requirements_stamp() -> str:
    return hashlib.sha256(paths.REQUIREMENTS.read_bytes()).hexdigest()


def venv_python() -> str:
    return str(paths.venv_dir() / "bin" / "python")


def ensure_venv() -> str:
    """The venv for gdb's Python and for pytest; rebuilt when requirements change."""
    venv = paths.venv_dir()
    stamp = venv / ".kx-requirements"
    want = _requirements_stamp()
    if stamp.exists() and stamp.read_text() == want and os.path.exists(venv_python()):
        return venv_python()
    log(f"creating venv {venv} with {paths.SYSTEM_PYTHON}")
    subprocess.run([paths.SYSTEM_PYTHON, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(paths.REQUIREMENTS)], check=True)
    stamp.write_text(want)
    return venv_python()


# The optional drgn extra (setup.py's extras_require["drgn"]): kx drgn and
# gdbext.api.drgn_program.  A manylinux wheel for gdb's Python (3.11) with
# its own libdw; ~130 MB installed, so only on request.
DRGN = "drgn==0.3.0"


def drgn_installed(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('drgn'))"],
                           capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.strip() == DRGN.split("==")[1]


def ensure_drgn(python: str) -> None:
    """drgn in the venv: checked on every run, because a venv rebuilt for
    new requirements (ensure_venv) starts without it."""
    if drgn_installed(python):
        return
    log(f"pip install {DRGN}")
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", DRGN], check=True)


def ensure_all(with_drgn: bool = False) -> str:
    ensure_apt()
    python = ensure_venv()
    if with_drgn:
        ensure_drgn(python)
    return python
