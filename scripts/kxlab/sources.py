"""The source tree of a lab kernel, from Debian's linux-source-SERIES.

Every suite the lab uses ships the binary package linux-source-SERIES (one
.tar.xz under usr/src): bookworm's 6.1 and 6.12, bullseye's 5.10, sid's 7.2.
It is downloaded through the kernel's own apt (system or private state),
never installed, and unpacked into $KX_CACHE/src/linux-source-SERIES_VERSION/
by an atomic rename.  The version asked for is the kernel's own; when the
suite no longer has it, the newest one, said so in the log.
"""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from . import bootstrap, debs, kernels, paths


def src_dir() -> pathlib.Path:
    path = paths.cache_dir() / "src"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _entries(series: str):
    for meta in src_dir().glob("*/source.json"):
        info = json.loads(meta.read_text())
        if info["series"] == series:
            yield meta, info


def cached(series: str, kernel_version: str = None):
    """The unpacked tree for a series: the one made for `kernel_version` if
    there is one, else the newest.  None when there is none."""
    found = sorted(_entries(series), key=lambda e: e[0].stat().st_mtime)
    exact = [e for e in found if kernel_version and e[1]["kernel_version"] == kernel_version]
    pick = (exact or found or [None])[-1]
    return pick[0].parent if pick else None


def _pick_version(apt, pkg: str, want: str) -> str:
    versions = apt.versions(pkg)
    if not versions:
        raise RuntimeError(f"{apt!r} has no {pkg}")
    if want in versions:
        return want
    candidate = apt.show(pkg)[pkg]["Version"]
    bootstrap.log(f"{pkg} {want} is gone from {apt!r}; using {candidate}")
    return candidate


def fetch(series: str, quiet: bool = False, kernel: kernels.Kernel = None) -> pathlib.Path:
    """The source tree of the series' current kernel (fetched if needed)."""
    kernel = kernel or kernels.fetch(series, quiet=True)
    have = cached(series, kernel.version)
    if have and json.loads((have / "source.json").read_text())["kernel_version"] == kernel.version:
        return have
    apt = kernels.series_apt(series)
    pkg = f"linux-source-{series}"
    try:
        version = _pick_version(apt, pkg, kernel.version)
    except RuntimeError:
        if have:
            bootstrap.log(f"cannot ask apt for {pkg}; using {have.name}")
            return have
        raise
    root = src_dir() / f"{pkg}_{version}".replace("~", "-").replace(":", "-")
    if (root / "source.json").exists():
        return root
    return _fetch_into(apt, pkg, version, kernel, root, quiet)


def _fetch_into(apt, pkg, version, kernel, root, quiet) -> pathlib.Path:
    bootstrap.log(f"fetching {pkg} {version}")
    kernels.sweep_staging(src_dir())
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=src_dir()))
    try:
        dl = staging / "debs"
        dl.mkdir()
        size = int(apt.show(pkg)[pkg]["Size"])
        got = debs.download(apt, {f"{pkg}={version}": size}, dl, quiet)
        start = time.monotonic()
        deb = next(dl.glob("*.deb"))
        tarball = debs.extract_file(deb, f"usr/src/{pkg}.tar.xz", staging / "src.tar.xz")
        shutil.rmtree(dl)
        # The tarball holds one directory, linux-source-SERIES/.
        subprocess.run(["tar", "-xJf", str(tarball), "-C", str(staging), "--strip-components=1",
                        "--no-same-owner"], check=True)
        tarball.unlink()
        unpack = round(time.monotonic() - start, 1)
        bootstrap.log(f"{pkg}: {got['bytes'] / 1e6:.1f} MB downloaded in {got['seconds']} s,"
                      f" unpacked in {unpack} s")
        info = {"series": kernel.series, "package": pkg, "version": version,
                "kernel_version": kernel.version, "fetch": {**got, "unpack_seconds": unpack}}
        (staging / "source.json").write_text(json.dumps(info, indent=1))
        os.chmod(staging, 0o755)
        os.rename(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def dwarf_source_root(vmlinux: pathlib.Path):
    """The source tree the vmlinux's DWARF names its files under: the first
    compile unit's DW_AT_comp_dir up to Debian's /debian/build/ (6.1:
    /build/reproducible-path/linux-6.1.192), or the whole comp_dir for a
    kernel built in its tree.  Cached beside the vmlinux (one CU read:
    about 2 s cold on the 590 MB file).  None without DWARF."""
    cache = vmlinux.parent / "dwarf_source_root"
    if cache.exists():
        return cache.read_text().strip() or None
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(vmlinux, "rb") as f:
            dwarf = ELFFile(f).get_dwarf_info(relocate_dwarf_sections=False)
            top = next(dwarf.iter_CUs()).get_top_DIE()
            comp_dir = top.attributes["DW_AT_comp_dir"].value.decode()
    except (OSError, ELFError, StopIteration, KeyError, AttributeError, UnicodeDecodeError):
        return None
    root = comp_dir.split("/debian/build/")[0]
    try:
        cache.write_text(root + "\n")
    except OSError:
        pass
    return root


def gdb_source_commands(vmlinux) -> list:
    """The gdb commands that show a lab kernel's source lines (`list`, the
    line at a stop) from the cached tree: `set substitute-path` for a DWARF
    that names absolute paths (6.1, 5.10: /build/reproducible-path/linux-V),
    and `directory` for one that names them relative to a relative
    comp_dir (6.12, 7.2: arch/x86/entry/entry_64.S).  [] when the vmlinux
    is not a lab kernel's or its source is not cached."""
    vmlinux = pathlib.Path(vmlinux)
    meta = vmlinux.parent / "kernel.json"
    if not meta.exists():
        return []
    info = json.loads(meta.read_text())
    tree = cached(info["series"], info.get("version"))
    root = dwarf_source_root(vmlinux) if tree is not None else None
    if root is None:
        return []
    out = [f"directory {tree}"]
    if root.startswith("/"):
        out.insert(0, f"set substitute-path {root} {tree}")
    return out
