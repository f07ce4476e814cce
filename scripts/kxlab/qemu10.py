"""QEMU 10.0.2 from bookworm-backports, for the kxtrace plugin (TCG plugin
API 4: register reads since 9.0, qemu_plugin_read_memory_vaddr since 9.2).

Nothing is installed into the system: a private apt state under
$KX_CACHE/apt/bookworm-backports (its own sources list with one suite, its
own lists and package cache; /etc/apt is never touched) downloads the
pinned packages, and `dpkg -x` unpacks them into $KX_CACHE/qemu/<version>/.
The binary runs on bookworm with the libraries the system's own QEMU 7.2
pulled in (bootstrap installs qemu-system-x86).

The same state, with a deb-src line, fetches QEMU's source tarball, whose
include/qemu/qemu-plugin.h the plugin build reads (plugin.py): the header is
extracted at build time, never committed.

Which QEMU the lab runs is chosen by $KX_QEMU (see `select`).
"""
import dataclasses
import fcntl
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from . import bootstrap, paths

SUITE = "bookworm-backports"
QEMU_VERSION = "1:10.0.2+ds-2+deb13u1~bpo12+1"
SEABIOS_VERSION = "1.16.3-2~bpo12+1"
PACKAGES = {"qemu-system-x86": QEMU_VERSION, "qemu-system-arm": QEMU_VERSION,
            "qemu-system-common": QEMU_VERSION, "qemu-system-data": QEMU_VERSION,
            "seabios": SEABIOS_VERSION}
# What each package set must have given (an older cache without one is refetched).
BINARIES = ("qemu-system-x86_64", "qemu-system-i386", "qemu-system-aarch64")
SOURCE_PACKAGE = "qemu"
ORIG_TARBALL = "qemu_10.0.2+ds.orig.tar.xz"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclasses.dataclass(frozen=True)
class Qemu:
    """One QEMU the lab can run: the binary and its firmware directories."""
    binary: str
    datadirs: tuple = ()       # -L, in order: the first that has a file wins
    label: str = ""            # "7.2" (the system's) or "10.0"

    def prefix(self) -> list:
        out = [self.binary]
        for d in self.datadirs:
            out += ["-L", d]
        return out

    def sibling(self, name: str) -> "Qemu":
        """The same QEMU's binary for another target (qemu-system-aarch64
        beside qemu-system-x86_64); the system's from PATH."""
        if self.label == "7.2":
            return Qemu(shutil.which(name) or name, self.datadirs, self.label)
        return Qemu(str(pathlib.Path(self.binary).with_name(name)), self.datadirs, self.label)

    def version(self) -> tuple:
        """(major, minor, micro) from `-version`."""
        text = subprocess.run([self.binary, "-version"], capture_output=True, text=True).stdout
        m = re.search(r"version (\d+)\.(\d+)\.(\d+)", text)
        if not m:
            raise RuntimeError(f"{self.binary} -version said {text.strip()[:80]!r}")
        return tuple(int(x) for x in m.groups())


def root() -> pathlib.Path:
    return paths.cache_dir() / "qemu" / QEMU_VERSION.split(":")[-1].replace("~", "-")


def apt_root() -> pathlib.Path:
    return paths.cache_dir() / "apt" / SUITE


def _apt_options() -> list:
    r = apt_root()
    return ["-o", f"Dir::State::Lists={r}/lists", "-o", f"Dir::Etc::sourcelist={r}/sources.list",
            "-o", "Dir::Etc::sourceparts=-", "-o", f"Dir::Cache={r}/cache",
            "-o", "Dir::Etc::preferencesparts=-"]


def _system_archive() -> str:
    """The Debian archive the system's own apt sources name (or
    $KX_DEBIAN_MIRROR): backports live in the same archive."""
    if os.environ.get("KX_DEBIAN_MIRROR"):
        return os.environ["KX_DEBIAN_MIRROR"]
    out = subprocess.run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(TARGET_OF)"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "deb" and "-" not in parts[1]:
            return parts[0]
    raise RuntimeError("the system's apt sources name no Debian archive; set KX_DEBIAN_MIRROR")


def _apt(argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True)


def apt_update(force: bool = False) -> None:
    """The private lists of bookworm-backports (binary and source)."""
    r = apt_root()
    for d in ("lists/partial", "cache/archives/partial"):
        (r / d).mkdir(parents=True, exist_ok=True)
    with open(r / "kx.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and list((r / "lists").glob("*InRelease")):
            return
        archive = _system_archive()
        (r / "sources.list").write_text(f"deb [signed-by={KEYRING}] {archive} {SUITE} main\n"
                                        f"deb-src [signed-by={KEYRING}] {archive} {SUITE} main\n")
        bootstrap.log(f"apt-get update ({SUITE}, private state)")
        proc = _apt(["apt-get", *_apt_options(), "-q", "update"])
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get update of {SUITE} failed:\n{proc.stderr.strip()}")


def _download(pkgs: list, dest: pathlib.Path) -> None:
    os.chmod(dest, 0o777)      # apt drops to the _apt user when it can
    argv = ["apt-get", *_apt_options(), "download", "-q", *pkgs]
    proc = _apt(argv, cwd=dest)
    if proc.returncode != 0:
        apt_update(force=True)  # the lists named a file the archive dropped
        proc = _apt(argv, cwd=dest)
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get download failed:\n{proc.stderr.strip()}")


def fetch() -> pathlib.Path:
    """QEMU 10.0.2 and its firmware unpacked under the cache: the root
    (usr/bin/qemu-system-{x86_64,i386,aarch64}, usr/share/qemu,
    usr/share/seabios)."""
    dest = root()
    if (dest / "kx-qemu.done").exists() and all((dest / "usr/bin" / b).exists() for b in BINARIES):
        return dest
    bootstrap.ensure_apt()
    apt_update()
    bootstrap.log(f"fetching QEMU {QEMU_VERSION} and seabios {SEABIOS_VERSION} ({SUITE})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
    try:
        debs = staging / "debs"
        debs.mkdir()
        _download([f"{p}={v}" for p, v in PACKAGES.items()], debs)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True)
        shutil.rmtree(debs)
        missing = [b for b in BINARIES if not (staging / "usr/bin" / b).exists()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} missing from the packages")
        (staging / "kx-qemu.done").write_text(QEMU_VERSION + "\n")
        os.chmod(staging, 0o755)
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def qemu10() -> Qemu:
    r = fetch()
    # seabios first: qemu-system-data's bios-256k.bin is a symlink into
    # /usr/share/seabios, which would be the system's (7.2's) firmware.
    return Qemu(str(r / "usr/bin/qemu-system-x86_64"),
                (str(r / "usr/share/seabios"), str(r / "usr/share/qemu")), "10.0")


def system() -> Qemu:
    return Qemu(shutil.which("qemu-system-x86_64") or "qemu-system-x86_64", (), "7.2")


def select(spec: str = None) -> Qemu:
    """The QEMU $KX_QEMU names: unset, "10", "10.0" or "10.0.2": the lab's
    10.0.2 from bookworm-backports (fetched on first use; the kxtrace plugin
    needs it); "system" or "7.2": the system's (bookworm's 7.2); anything
    else: a path to a qemu-system-x86_64, with $KX_QEMU_DATADIR as its -L."""
    spec = os.environ.get("KX_QEMU", "") if spec is None else spec
    if spec in ("system", "7.2"):
        return system()
    if spec in ("", "10", "10.0", "10.0.2"):
        return qemu10()
    datadir = os.environ.get("KX_QEMU_DATADIR")
    return Qemu(spec, (datadir,) if datadir else (), "custom")


def plugin_header() -> pathlib.Path:
    """include/qemu/qemu-plugin.h of QEMU 10.0.2, from Debian's orig
    tarball (downloaded once into the cache; only the header is kept)."""
    dest = paths.cache_dir() / "qemu" / "include-10.0.2" / "qemu-plugin.h"
    if dest.exists():
        return dest
    apt_update()
    tarball = _orig_tarball()
    member = "qemu-10.0.2/include/qemu/qemu-plugin.h"
    with tempfile.TemporaryDirectory(dir=paths.cache_dir()) as tmp:
        subprocess.run(["tar", "-xJf", str(tarball), "-C", tmp, member], check=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(pathlib.Path(tmp) / member, dest)
    tarball.unlink()
    return dest


def _orig_tarball() -> pathlib.Path:
    """The orig tarball alone: `apt-get source --print-uris` names it and
    apt's own downloader fetches it with its hash checked (the .dsc has
    answered 404 before, so `apt-get source --download-only` is not used)."""
    proc = _apt(["apt-get", *_apt_options(), "source", "--print-uris", "-q",
                 f"{SOURCE_PACKAGE}={QEMU_VERSION}"])
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get source --print-uris qemu failed:\n{proc.stderr.strip()}")
    for line in proc.stdout.splitlines():
        m = re.match(r"'(\S+)' (\S+) (\d+) (\S+)", line)
        if m and m.group(2) == ORIG_TARBALL:
            dest = paths.cache_dir() / "qemu" / ORIG_TARBALL
            dest.parent.mkdir(parents=True, exist_ok=True)
            bootstrap.log(f"fetching {ORIG_TARBALL} ({int(m.group(3)) / 1e6:.0f} MB) for qemu-plugin.h")
            os.chmod(dest.parent, 0o777)
            get = _apt(["/usr/lib/apt/apt-helper", "download-file", m.group(1), str(dest), m.group(4)])
            if get.returncode != 0:
                raise RuntimeError(f"downloading {ORIG_TARBALL} failed:\n{get.stderr.strip()}")
            return dest
    raise RuntimeError(f"apt-get source --print-uris names no {ORIG_TARBALL}")
