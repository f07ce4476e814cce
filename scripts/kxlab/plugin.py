"""Build the kxtrace TCG plugin (scripts/plugin/) and say how QEMU loads it.

The plugin is C, compiled by gcc against glib's headers (libglib2.0-dev)
and QEMU 10.0.2's include/qemu/qemu-plugin.h, which qemu10.py extracts from
Debian's source tarball at build time.  The shared object is cached under
$KX_CACHE/plugin/ by the hash of its sources and the header, so it is built
once.  QEMU loads it with `-plugin PATH,sock=SOCKET`; kx connects to SOCKET.
"""
import hashlib
import os
import pathlib
import shlex
import subprocess
import tempfile

from . import bootstrap, paths, qemu10

SOURCE = paths.SCRIPTS / "plugin"
FILES = ("kxtrace.h", "kxtrace.c", "control.c")
# Plugin API 4 (qemu_plugin_read_memory_vaddr) is QEMU 9.2 and later.
MIN_QEMU = (9, 2, 0)


class PluginUnsupported(RuntimeError):
    """This QEMU cannot load the plugin."""


def _glib_cflags() -> list:
    out = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"pkg-config glib-2.0 failed: {out.stderr.strip()}")
    return shlex.split(out.stdout)


def build() -> pathlib.Path:
    """The plugin's shared object, built if its sources changed."""
    bootstrap.ensure_apt()
    header = qemu10.plugin_header()
    digest = hashlib.sha256(header.read_bytes())
    for name in FILES:
        digest.update((SOURCE / name).read_bytes())
    out_dir = paths.cache_dir() / "plugin"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"kxtrace-{digest.hexdigest()[:16]}.so"
    if target.exists():
        return target
    bootstrap.log(f"building the kxtrace plugin ({target.name})")
    with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".so", delete=False) as tmp:
        pass
    argv = ["gcc", "-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
            "-std=gnu11", "-shared", "-fPIC", "-fvisibility=hidden",
            *_glib_cflags(), "-I", str(header.parent), "-I", str(SOURCE),
            *[str(SOURCE / f) for f in FILES if f.endswith(".c")], "-o", tmp.name, "-lpthread"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp.name)
        raise RuntimeError(f"building the plugin failed:\n{proc.stderr.strip()}")
    os.chmod(tmp.name, 0o755)
    os.replace(tmp.name, target)
    return target


def check_qemu(q: qemu10.Qemu) -> None:
    """PluginUnsupported, in one line, unless `q` can load the plugin."""
    version = q.version()
    if version < MIN_QEMU:
        raise PluginUnsupported(
            f"QEMU {'.'.join(map(str, version))} ({q.binary}) cannot load the kxtrace plugin: it needs "
            f"QEMU {'.'.join(map(str, MIN_QEMU[:2]))} or later (plugin API 4); use KX_QEMU=10.0")


def qemu_args(socket_path: str, q: qemu10.Qemu = None, ring_kb: int = 0) -> list:
    """QEMU's binary, its firmware directories and the -plugin option
    (`ring_kb`: KiB per vCPU ring, 0 for the plugin's default)."""
    q = q or plugin_qemu()
    check_qemu(q)
    so = build()
    return q.prefix() + ["-plugin", f"{so},sock={socket_path}" + (f",ring_kb={ring_kb}" if ring_kb else "")]


def plugin_qemu() -> qemu10.Qemu:
    """The QEMU for a guest with the plugin: $KX_QEMU if set, else 10.0.2."""
    return qemu10.select(os.environ.get("KX_QEMU") or "10.0")
