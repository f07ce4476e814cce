"""Fetch Debian's cloud-amd64 kernels: vmlinuz, and the vmlinux with DWARF.

The version is resolved at run time through Debian's meta-packages, never a
hard-coded ABI number.  Downloads use `apt-get download` and `dpkg-deb`, so
nothing is installed into the system's own kernel.  Each kernel lands in
$KX_CACHE/kernels/<abi>_<version>/ by an atomic rename of a finished staging
directory, so an interrupted fetch never leaves a half file that looks cached.
"""
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import bootstrap, paths

# series -> (image meta-package, dbg meta-package)
META = {
    "6.1": ("linux-image-cloud-amd64", "linux-image-cloud-amd64-dbg"),
    "6.12": ("linux-image-6.12-cloud-amd64", "linux-image-6.12-cloud-amd64-dbg"),
}
DEFAULT_SERIES = "6.1"


@dataclasses.dataclass
class Kernel:
    series: str
    abi: str          # e.g. 6.1.0-56-cloud-amd64
    version: str      # Debian package version, e.g. 6.1.192-2
    root: pathlib.Path

    @property
    def vmlinuz(self) -> pathlib.Path:
        return self.root / "vmlinuz"

    @property
    def vmlinux(self) -> pathlib.Path:
        return self.root / "vmlinux"

    @property
    def system_map(self) -> pathlib.Path:
        return self.root / "System.map"

    @property
    def config(self) -> pathlib.Path:
        return self.root / "config"

    def symbols(self) -> dict:
        """System.map as {name: address}; the tests' independent ground truth."""
        table = {}
        with open(self.system_map) as f:
            for line in f:
                addr, _kind, name = line.split()[:3]
                table.setdefault(name, int(addr, 16))
        return table


def _apt(*args: str) -> str:
    return subprocess.run(["apt-cache", *args], check=True, capture_output=True,
                          text=True).stdout


def _depends_on(meta: str) -> str:
    """The one linux-image-* package a meta-package depends on."""
    for line in _apt("depends", meta).splitlines():
        line = line.strip()
        if line.startswith("Depends:"):
            return line.split()[1]
    raise RuntimeError(f"{meta} has no Depends line")


def _field(pkg: str, name: str) -> str:
    for line in _apt("show", "--no-all-versions", pkg).splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"apt-cache show {pkg}: no {name}")


def resolve(series: str) -> dict:
    """Ask apt which packages the meta-packages currently point at."""
    image_meta, dbg_meta = META[series]
    try:
        signed = _depends_on(image_meta)
    except subprocess.CalledProcessError:
        # A fresh machine may have no package lists yet.
        bootstrap.apt_update()
        signed = _depends_on(image_meta)
    dbg = _depends_on(dbg_meta)
    abi = signed[len("linux-image-"):]
    if signed.endswith("-unsigned"):
        abi = abi[: -len("-unsigned")]
    unsigned = f"linux-image-{abi}-unsigned"
    if dbg != f"linux-image-{abi}-dbg":
        raise RuntimeError(f"meta-packages disagree: {signed} vs {dbg}")
    version = _field(unsigned, "Version")
    return {
        "series": series, "abi": abi, "version": version,
        "packages": {unsigned: int(_field(unsigned, "Size")), dbg: int(_field(dbg, "Size"))},
    }


def kernels_dir() -> pathlib.Path:
    path = paths.cache_dir() / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _entry_name(abi: str, version: str) -> str:
    return f"{abi}_{version}".replace("~", "-").replace(":", "-")


def cached(series: str):
    """The newest complete cached kernel of a series, without asking apt."""
    found = []
    for meta in kernels_dir().glob("*/kernel.json"):
        info = json.loads(meta.read_text())
        if info["series"] == series:
            found.append((meta.stat().st_mtime, info, meta.parent))
    if not found:
        return None
    _, info, root = max(found, key=lambda f: f[0])
    return Kernel(series, info["abi"], info["version"], root)


def _download(pkgs: dict, dest: pathlib.Path, quiet: bool) -> None:
    """apt-get download with a progress line fed by the growing files."""
    total = sum(pkgs.values())
    done = threading.Event()

    def progress():
        last = ""
        while not done.wait(1.0):
            have = sum(f.stat().st_size for f in dest.glob("*.deb*") if f.is_file())
            line = f"lab: fetch {have / 1e6:7.1f} / {total / 1e6:.1f} MB"
            if line != last and not quiet:
                print(line, file=sys.stderr, flush=True)
                last = line

    t = threading.Thread(target=progress, daemon=True)
    t.start()
    try:
        # apt drops to the _apt user when it can: let it write here.
        os.chmod(dest, 0o777)
        proc = subprocess.run(["apt-get", "download", "-q", *pkgs], cwd=dest,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get download failed:\n{proc.stderr.strip()}")
    finally:
        done.set()
        t.join()


def _extract(deb: pathlib.Path, members: dict, dest: pathlib.Path) -> None:
    """Pull only `members` ({path in deb: name in dest}) out of a .deb."""
    tar = subprocess.Popen(["tar", "-x", "-C", str(dest), *members],
                           stdin=subprocess.PIPE)
    deb_proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=tar.stdin)
    tar.stdin.close()
    if deb_proc.wait() != 0 or tar.wait() != 0:
        raise RuntimeError(f"extracting {deb.name} failed")
    for member, name in members.items():
        os.replace(dest / member, dest / name)


def fetch(series: str = DEFAULT_SERIES, quiet: bool = False, offline_ok: bool = True) -> Kernel:
    if series not in META:
        raise SystemExit(f"lab: unknown kernel {series!r}; choose from {', '.join(META)}")
    try:
        info = resolve(series)
    except (subprocess.CalledProcessError, RuntimeError, FileNotFoundError) as exc:
        old = cached(series) if offline_ok else None
        if old:
            bootstrap.log(f"cannot ask apt ({exc}); using cached {old.abi}")
            return old
        raise
    root = kernels_dir() / _entry_name(info["abi"], info["version"])
    if (root / "kernel.json").exists():
        os.utime(root / "kernel.json")
        return Kernel(series, info["abi"], info["version"], root)

    bootstrap.log(f"fetching {info['abi']} ({info['version']})")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=kernels_dir()))
    try:
        debs = staging / "debs"
        debs.mkdir()
        _download(info["packages"], debs, quiet)
        abi = info["abi"]
        for deb in debs.glob("*.deb"):
            if "-dbg_" in deb.name:
                _extract(deb, {f"./usr/lib/debug/boot/vmlinux-{abi}": "vmlinux",
                               f"./usr/lib/debug/boot/System.map-{abi}": "System.map"}, staging)
            else:
                _extract(deb, {f"./boot/vmlinuz-{abi}": "vmlinuz",
                               f"./boot/config-{abi}": "config"}, staging)
        shutil.rmtree(debs)
        shutil.rmtree(staging / "usr", ignore_errors=True)
        shutil.rmtree(staging / "boot", ignore_errors=True)
        for name in ("vmlinux", "vmlinuz", "System.map", "config"):
            if not (staging / name).exists():
                raise RuntimeError(f"{name} missing from the packages")
        (staging / "kernel.json").write_text(json.dumps(info, indent=1))
        os.chmod(staging, 0o755)
        os.rename(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kernel = Kernel(series, info["abi"], info["version"], root)
    warm_index_cache(kernel, quiet)
    return kernel


def warm_index_cache(kernel: Kernel, quiet: bool = False) -> None:
    """Build gdb's index for this vmlinux once (about 20 s, 1.9 GB the first
    time; every later gdb then starts in well under a second)."""
    from . import gdbrun
    start = time.monotonic()
    if not quiet:
        bootstrap.log(f"warming gdb's index cache for {kernel.abi}")
    subprocess.run(gdbrun.gdb_argv(kernel.vmlinux, load_kx=False, batch=True)
                   + ["-ex", "print sizeof(struct pt_regs)"],
                   capture_output=True, check=False)
    if not quiet:
        bootstrap.log(f"index cache ready in {time.monotonic() - start:.1f} s")
