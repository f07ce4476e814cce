"""Fetch Debian's cloud-amd64 kernels: vmlinuz, and the vmlinux with DWARF.

The version is resolved at run time through Debian's meta-packages, never a
hard-coded ABI number.  bookworm's kernels come through the system's apt;
the other suites' through a private apt state (aptstate.py).  Downloads use
`apt-get download` and dpkg-deb, so nothing is installed into the system.
Each kernel lands in $KX_CACHE/kernels/<abi>_<version>/ by an atomic rename
of a finished staging directory, so an interrupted fetch never leaves a half
file that looks cached.

A kernel built by hand (`--kernel-image`, `--vmlinux`) is used where it is;
only a System.map made from its vmlinux, when it has none, goes to the cache.
A kernel image brought alone (`--kernel-image` with `--no-vmlinux`) too.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from . import aptstate, bootstrap, debs, paths, sysmap


@dataclasses.dataclass(frozen=True)
class Series:
    suite: str        # None: the system's own apt (bookworm)
    image_meta: str   # meta-package -> linux-image-ABI
    dbg_meta: str     # meta-package -> linux-image-ABI-dbg
    arch: str = "x86_64"   # the guest's architecture (a Debian arch of its own: a private apt state)


SERIES = {
    # bullseye's point releases are over: 5.10.223 (ABI 5.10.0-32).
    "5.10": Series("bullseye", "linux-image-cloud-amd64", "linux-image-cloud-amd64-dbg"),
    "6.1": Series(None, "linux-image-cloud-amd64", "linux-image-cloud-amd64-dbg"),
    "6.12": Series(None, "linux-image-6.12-cloud-amd64", "linux-image-6.12-cloud-amd64-dbg"),
    # sid: linux-image-ABI is a meta; the vmlinuz is in linux-binary-ABI and
    # the config in linux-base-ABI, under usr/lib/modules/ABI/.
    "7.2": Series("sid", "linux-image-cloud-amd64", "linux-image-cloud-amd64-dbg"),
}
# Debian's 686-pae flavour (PAE, NX) is the only i386 kernel with a -dbg in
# bookworm; there is no i386 6.12.
I386_SERIES = {
    "6.1": Series("bookworm", "linux-image-686-pae", "linux-image-686-pae-dbg", arch="i386"),
}
# Debian's cloud-arm64 kernels, through a private bookworm state for arm64.
ARM64_SERIES = {
    "6.1": Series("bookworm", "linux-image-cloud-arm64", "linux-image-cloud-arm64-dbg", "arm64"),
    "6.12": Series("bookworm", "linux-image-6.12-cloud-arm64", "linux-image-6.12-cloud-arm64-dbg", "arm64"),
}
SERIES_BY_ARCH = {"x86_64": SERIES, "i386": I386_SERIES, "arm64": ARM64_SERIES}
META = SERIES                 # the older name
DEFAULT_SERIES = "6.1"
DEFAULT_ARCH = "x86_64"
DEBIAN_ARCH = {"x86_64": "amd64", "i386": "i386", "arm64": "arm64"}


def series_info(series: str, arch: str = DEFAULT_ARCH) -> Series:
    """The Series of `series` for `arch`; SystemExit naming the choices."""
    table = SERIES_BY_ARCH.get(arch)
    if table is None:
        raise SystemExit(f"lab: unknown architecture {arch!r}; choose from {', '.join(SERIES_BY_ARCH)}")
    if series not in table:
        raise SystemExit(f"lab: no {arch} kernel {series!r}; choose from {', '.join(table)}")
    return table[series]


@dataclasses.dataclass
class Kernel:
    series: str
    abi: str          # e.g. 6.1.0-56-cloud-amd64
    version: str      # Debian package version, e.g. 6.1.192-2
    root: pathlib.Path
    image: pathlib.Path = None        # set for a kernel built by hand
    debug: pathlib.Path = None
    map_path: pathlib.Path = None
    config_path: pathlib.Path = None
    arch: str = DEFAULT_ARCH

    @property
    def vmlinuz(self) -> pathlib.Path:
        return self.image or self.root / "vmlinuz"

    @property
    def vmlinux(self) -> pathlib.Path:
        return self.debug or self.root / "vmlinux"

    @property
    def has_vmlinux(self) -> bool:
        """False for a kernel image brought alone (image_only)."""
        return self.vmlinux.is_file()

    @property
    def system_map(self) -> pathlib.Path:
        return self.map_path or self.root / "System.map"

    @property
    def config(self) -> pathlib.Path:
        return self.config_path or self.root / "config"

    def symbols(self) -> dict:
        """System.map as {name: address}; the tests' independent ground truth."""
        table = {}
        with open(self.system_map) as f:
            for line in f:
                addr, _kind, name = line.split()[:3]
                table.setdefault(name, int(addr, 16))
        return table

    def info(self) -> dict:
        return {"series": self.series, "arch": self.arch, "abi": self.abi, "version": self.version,
                "vmlinuz": str(self.vmlinuz), "vmlinux": str(self.vmlinux),
                "system_map": str(self.system_map)}


def series_apt(series: str, arch: str = DEFAULT_ARCH) -> aptstate.Apt:
    s = series_info(series, arch)
    return aptstate.Apt(s.suite, DEBIAN_ARCH[arch] if arch != DEFAULT_ARCH else None)


def _image_dep(apt, meta: str, suffix: str = "") -> str:
    """The linux-image-ABI[suffix] package a meta-package depends on (sid's
    metas also depend on linux-base-FLAVOUR)."""
    for dep in apt.depends(meta):
        if dep.startswith("linux-image-") and dep.endswith(suffix):
            return dep
    raise RuntimeError(f"{meta} depends on no linux-image-*{suffix} ({apt!r})")


def resolve(series: str, arch: str = DEFAULT_ARCH) -> dict:
    """Ask apt which packages the meta-packages currently point at."""
    s, apt = series_info(series, arch), series_apt(series, arch)
    signed = _image_dep(apt, s.image_meta)
    abi = signed[len("linux-image-"):]
    if abi.endswith("-unsigned"):
        abi = abi[: -len("-unsigned")]
    if not abi.startswith(series + "."):
        raise RuntimeError(f"{s.image_meta} ({apt!r}) now points at {abi}, not a {series} kernel")
    dbg = f"linux-image-{abi}-dbg"
    if _image_dep(apt, s.dbg_meta, "-dbg") != dbg:
        raise RuntimeError(f"meta-packages disagree: {signed} vs {_image_dep(apt, s.dbg_meta, '-dbg')}")
    # The vmlinuz: linux-image-ABI-unsigned up to trixie, linux-binary-ABI in
    # sid.  sid's config is in linux-base-ABI.
    found = apt.show(f"linux-image-{abi}-unsigned", f"linux-binary-{abi}", f"linux-base-{abi}", dbg)
    image = next((p for p in found if not p.endswith("-dbg") and "-base-" not in p), None)
    if image is None or dbg not in found:
        raise RuntimeError(f"no image or -dbg package for {abi} ({apt!r})")
    pkgs = [image, dbg] + ([f"linux-base-{abi}"] if f"linux-base-{abi}" in found else [])
    return {"series": series, "arch": arch, "abi": abi, "version": found[dbg]["Version"],
            "suite": s.suite or "system", "packages": {p: int(found[p]["Size"]) for p in pkgs}}


def kernels_dir(arch: str = DEFAULT_ARCH) -> pathlib.Path:
    # Other architectures' kernels have a directory of their own: a 6.1 of
    # another architecture is never taken for the x86-64 6.1.
    path = paths.cache_dir() / ("kernels" if arch == DEFAULT_ARCH else f"kernels-{arch}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep_staging(parent: pathlib.Path, max_age: float = 86400) -> None:
    """Remove the staging directories of fetches that died over a day ago
    (a live fetch's is younger: it is renamed into place when done)."""
    for d in parent.glob(".staging-*"):
        try:
            if time.time() - d.stat().st_mtime > max_age:
                shutil.rmtree(d, ignore_errors=True)
        except FileNotFoundError:
            pass


def _entry_name(abi: str, version: str) -> str:
    return f"{abi}_{version}".replace("~", "-").replace(":", "-")


def arch_of(info: dict) -> str:
    """The architecture of a cached kernel: kernel.json's `arch`, or for
    entries written before it had one, Debian's flavour in the ABI name."""
    if info.get("arch"):
        return info["arch"]
    abi = info["abi"]
    return "i386" if abi.endswith(("-686-pae", "-686")) else "arm64" if abi.endswith("-arm64") else "x86_64"


def cached(series: str, arch: str = DEFAULT_ARCH):
    """The newest complete cached kernel of a series and architecture,
    without asking apt."""
    found = []
    for meta in kernels_dir(arch).glob("*/kernel.json"):
        info = json.loads(meta.read_text())
        if info["series"] == series and arch_of(info) == arch:
            found.append((meta.stat().st_mtime, info, meta.parent))
    if not found:
        return None
    _, info, root = max(found, key=lambda f: f[0])
    return Kernel(series, info["abi"], info["version"], root, arch=arch)


def _members(abi: str) -> dict:
    """Where each file lives in Debian's packages, by suite."""
    mods, dbg = f"usr/lib/modules/{abi}", "usr/lib/debug"
    return {
        f"boot/vmlinuz-{abi}": "vmlinuz", f"{mods}/vmlinuz": "vmlinuz",
        f"boot/config-{abi}": "config", f"{mods}/config": "config",
        f"{dbg}/boot/vmlinux-{abi}": "vmlinux", f"{dbg}/lib/modules/{abi}/vmlinux": "vmlinux",
        f"{dbg}/boot/System.map-{abi}": "System.map", f"boot/System.map-{abi}": "System.map",
    }


def _unpack(info: dict, debs_dir: pathlib.Path, staging: pathlib.Path) -> None:
    members = _members(info["abi"])
    for deb in sorted(debs_dir.glob("*.deb")):
        # Only the -dbg has the vmlinux; the image package has no System.map
        # but a stub (the -dbg's is the real one).
        want = {k: v for k, v in members.items() if (v in ("vmlinux", "System.map")) == ("-dbg_" in deb.name)}
        want = {k: v for k, v in want.items() if not (staging / v).exists()}
        if want:
            debs.extract(deb, want, staging, min_size={"System.map": sysmap.STUB_BYTES})
    if not (staging / "System.map").exists() and (staging / "vmlinux").exists():
        bootstrap.log(f"{info['abi']}: no System.map in the packages; making one with nm -n")
        sysmap.write(staging / "vmlinux", staging / "System.map")
    for name in ("vmlinux", "vmlinuz", "System.map", "config"):
        if not (staging / name).exists():
            raise RuntimeError(f"{name} missing from the packages")


def fetch(series: str = DEFAULT_SERIES, quiet: bool = False, offline_ok: bool = True,
          arch: str = DEFAULT_ARCH) -> Kernel:
    series_info(series, arch)
    try:
        info = resolve(series, arch)
    except (subprocess.CalledProcessError, RuntimeError, FileNotFoundError) as exc:
        old = cached(series, arch) if offline_ok else None
        if old:
            bootstrap.log(f"cannot ask apt ({exc}); using cached {old.abi}")
            return old
        raise
    root = kernels_dir(arch) / _entry_name(info["abi"], info["version"])
    if (root / "kernel.json").exists():
        os.utime(root / "kernel.json")
        return Kernel(series, info["abi"], info["version"], root, arch=arch)

    bootstrap.log(f"fetching {info['abi']} ({info['version']}, {info['suite']})")
    sweep_staging(kernels_dir(arch))
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=kernels_dir(arch)))
    try:
        (staging / "debs").mkdir()
        got = debs.download(series_apt(series, arch), info["packages"], staging / "debs", quiet)
        start = time.monotonic()
        _unpack(info, staging / "debs", staging)
        shutil.rmtree(staging / "debs")
        info["fetch"] = {**got, "unpack_seconds": round(time.monotonic() - start, 1)}
        bootstrap.log(f"{info['abi']}: {got['bytes'] / 1e6:.1f} MB downloaded in {got['seconds']} s,"
                      f" unpacked in {info['fetch']['unpack_seconds']} s")
        (staging / "kernel.json").write_text(json.dumps(info, indent=1))
        os.chmod(staging, 0o755)
        os.rename(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kernel = Kernel(series, info["abi"], info["version"], root, arch=arch)
    warm_index_cache(kernel, quiet)
    return kernel


def _banner_release(vmlinux: pathlib.Path) -> str:
    """The release in the vmlinux's linux_banner ("Linux version X ..."), or ""."""
    out = subprocess.run(["strings", "-n", "14", str(vmlinux)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Linux version "):
            return line.split()[2]
    return ""


def _custom_root(path: pathlib.Path) -> pathlib.Path:
    """The cache directory of a kernel brought by the user, keyed by its
    file's path, size and mtime."""
    st = path.stat()
    key = hashlib.sha1(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    root = paths.cache_dir() / "custom" / key
    root.mkdir(parents=True, exist_ok=True)
    return root


def custom(image, vmlinux, warm: bool = True) -> Kernel:
    """A kernel built by hand: its bzImage and its vmlinux (with DWARF).  The
    System.map and .config beside the vmlinux are used when there; else a
    System.map is made from the vmlinux into the cache."""
    image, vmlinux = pathlib.Path(image).resolve(), pathlib.Path(vmlinux).resolve()
    for p in (image, vmlinux):
        if not p.is_file():
            raise SystemExit(f"lab: {p} is not a file")
    root = _custom_root(vmlinux)
    release = _banner_release(vmlinux) or "custom"
    beside = vmlinux.parent / "System.map"
    smap = beside if not sysmap.is_stub(beside) else root / "System.map"
    if smap != beside and sysmap.is_stub(smap):
        bootstrap.log(f"no System.map beside {vmlinux}; making {smap} with nm -n")
        sysmap.write(vmlinux, smap)
    config = vmlinux.parent / ".config"
    kernel = Kernel("custom", release, "", root, image=image, debug=vmlinux, map_path=smap,
                    config_path=config if config.exists() else None)
    if warm and not (root / "index-warm").exists():
        warm_index_cache(kernel)
        (root / "index-warm").write_text("")
    return kernel


# The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst):
# "HdrS" at 0x202; kernel_version (2 bytes) at 0x20E points, less 0x200,
# at the release string "6.1.0-57-cloud-amd64 (debian-kernel@...) #1 ...".
SETUP_MAGIC_AT, SETUP_MAGIC, KERNEL_VERSION_AT = 0x202, b"HdrS", 0x20E


def image_release(image) -> str:
    """The release a bzImage names in its setup header, or ""."""
    with open(image, "rb") as f:
        head = f.read(0x10000)
    if head[SETUP_MAGIC_AT:SETUP_MAGIC_AT + 4] != SETUP_MAGIC or len(head) < KERNEL_VERSION_AT + 2:
        return ""
    at = int.from_bytes(head[KERNEL_VERSION_AT:KERNEL_VERSION_AT + 2], "little")
    if not at:
        return ""
    words = head[at + 0x200:at + 0x300].split(b"\0", 1)[0].split()
    return words[0].decode(errors="replace") if words else ""


def image_only(image) -> Kernel:
    """A kernel image brought with no vmlinux (a stripped bzImage): booted
    as it is; gdb attaches with kx reading the kernel's own kallsyms and BTF.
    Its cache directory holds no vmlinux and no System.map."""
    image = pathlib.Path(image).resolve()
    if not image.is_file():
        raise SystemExit(f"lab: {image} is not a file")
    return Kernel("custom", image_release(image) or "custom", "", _custom_root(image), image=image)


def warm_index_cache(kernel: Kernel, quiet: bool = False) -> float:
    """Build gdb's index for this vmlinux once (about 20 s, 1.9 GB the first
    time; every later gdb then starts in well under a second).  Returns the
    seconds it took."""
    from . import gdbrun
    start = time.monotonic()
    if not quiet:
        bootstrap.log(f"warming gdb's index cache for {kernel.abi}")
    subprocess.run(gdbrun.gdb_argv(kernel.vmlinux, load_kx=False, batch=True, arch=kernel.arch)
                   + ["-ex", "print sizeof(struct pt_regs)"],
                   capture_output=True, check=False)
    took = time.monotonic() - start
    if not quiet:
        bootstrap.log(f"index cache ready in {took:.1f} s")
    return took
