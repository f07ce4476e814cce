"""apt, on the system's lists or on a private state of one Debian suite.

Kernels of other suites (bullseye's 5.10, sid's 7.2) come through a private
apt state under $KX_CACHE/apt/<suite>: its own sources.list (one suite), its
own lists and its own package cache.  /etc/apt and dpkg's state are never
touched.  The private list uses the archive the system's own sources already
name for Debian (apt-get indextargets), or $KX_DEBIAN_MIRROR.
"""
import fcntl
import os
import pathlib
import subprocess
import time

from . import bootstrap, paths

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MAX_AGE = 6 * 3600     # sid moves daily: older lists may name deleted files


class AptError(RuntimeError):
    pass


def _run(argv, cwd=None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise AptError(f"{argv[0]} is not installed") from exc


def system_archive() -> str:
    """The Debian archive URI the system's own apt sources use."""
    if os.environ.get("KX_DEBIAN_MIRROR"):
        return os.environ["KX_DEBIAN_MIRROR"]
    out = _run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(TARGET_OF)"]).stdout
    for line in out.splitlines():
        parts = line.split()
        # The main archive: a plain release name, not -security or -updates.
        if len(parts) == 3 and parts[2] == "deb" and "-" not in parts[1]:
            return parts[0]
    raise AptError("the system's apt sources name no Debian archive; set KX_DEBIAN_MIRROR")


def system_sources() -> list:
    """[(archive URI, release)] of the system's own Debian sources."""
    out = _run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(TARGET_OF)"]).stdout
    return sorted({tuple(line.split()[:2]) for line in out.splitlines()
                   if len(line.split()) == 3 and line.split()[2] == "deb"})


class Apt:
    """apt-cache and apt-get on the system's state (suite None) or a private one."""

    def __init__(self, suite: str = None, arch: str = None):
        # `arch`: a Debian architecture other than the machine's (i386), set
        # only in this state's options; dpkg's own architectures stay as
        # they are.
        self.suite, self.arch = suite, arch
        name = f"{suite}-{arch}" if arch else suite
        self.root = paths.cache_dir() / "apt" / name if suite else None
        self._fresh = False

    def __repr__(self):
        return f"Apt({self.suite or 'system'}{', ' + self.arch if self.arch else ''})"

    def options(self) -> list:
        if not self.root:
            return []
        r = self.root
        return ["-o", f"Dir::State::Lists={r}/lists", "-o", f"Dir::Etc::sourcelist={r}/sources.list",
                "-o", "Dir::Etc::sourceparts=-", "-o", f"Dir::Cache={r}/cache",
                "-o", "Dir::Etc::preferencesparts=-"] + self.arch_options()

    def arch_options(self) -> list:
        if not self.arch:
            return []
        return ["-o", f"APT::Architecture={self.arch}", "-o", f"APT::Architectures={self.arch}"]

    # -- the lists ---------------------------------------------------------
    def _lists_age(self) -> float:
        stamps = list((self.root / "lists").glob("*InRelease"))
        return time.time() - max(s.stat().st_mtime for s in stamps) if stamps else float("inf")

    def update(self, force: bool = False) -> None:
        """Fetch the suite's lists when missing, older than MAX_AGE, or forced
        (the system's lists: only when forced, once per run)."""
        if not self.root:
            if force:
                bootstrap.apt_update()
            return
        if self._fresh and not force:
            return
        for d in ("lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        with open(self.root / "kx.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)     # one update at a time per suite
            if force or self._lists_age() > MAX_AGE:
                self._write_sources()
                bootstrap.log(f"apt-get update ({self.suite}, private state)")
                proc = _run(["apt-get", *self.options(), "-q", "update"])
                if proc.returncode != 0 or self._lists_age() == float("inf"):
                    raise AptError(f"apt-get update of {self.suite} failed:\n{proc.stderr.strip()}")
        self._fresh = True

    def _write_sources(self) -> None:
        lines = [f"deb [signed-by={KEYRING}] {system_archive()} {self.suite} main\n"]
        if self.arch:
            # Another architecture of the system's own suite: also its
            # -security and -updates, as the system's sources name them
            # (bookworm's 6.12 kernels are only in bookworm-security).
            lines += [f"deb [signed-by={KEYRING}] {uri} {release} main\n"
                      for uri, release in system_sources() if release.startswith(self.suite + "-")]
        (self.root / "sources.list").write_text("".join(lines))

    # -- queries -----------------------------------------------------------
    def cache(self, *args: str) -> str:
        self.update()
        proc = _run(["apt-cache", *self.options(), *args])
        if proc.returncode != 0 and self.root is None and not bootstrap.apt_updated():
            bootstrap.apt_update()           # a fresh machine may have no lists yet
            proc = _run(["apt-cache", *self.options(), *args])
        if proc.returncode != 0:
            raise AptError(f"apt-cache {' '.join(args)} ({self!r}):\n{proc.stderr.strip()}")
        return proc.stdout

    def depends(self, pkg: str) -> list:
        """The packages `pkg` depends on (alternatives and virtuals left out)."""
        out = []
        for line in self.cache("depends", pkg).splitlines():
            line = line.strip()
            if line.startswith("Depends:") and "<" not in line:
                out.append(line.split()[1])
        return out

    def show(self, *pkgs: str) -> dict:
        """{package: {field: value}} for those of `pkgs` that exist (candidate
        versions).  One apt-cache call: it prints the packages it finds even
        when it fails on another."""
        self.update()
        proc = _run(["apt-cache", *self.options(), "show", "--no-all-versions", *pkgs])
        found = {}
        for stanza in proc.stdout.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(" "):
                    k, v = line.split(":", 1)
                    fields[k] = v.strip()
            if fields.get("Package") in pkgs:
                found.setdefault(fields["Package"], fields)
        return found

    def versions(self, pkg: str) -> list:
        """Every version of `pkg` the lists offer."""
        out = self.cache("show", pkg)
        return [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Version:")]

    def download(self, pkgs, dest: pathlib.Path) -> None:
        """apt-get download `pkgs` (names, or name=version) into `dest`."""
        self.update()
        # apt drops to the _apt user when it can: let it write here.
        os.chmod(dest, 0o777)
        proc = _run(["apt-get", *self.options(), "download", "-q", *pkgs], cwd=dest)
        if proc.returncode != 0:
            self.update(force=True)         # the lists named a file the mirror dropped
            proc = _run(["apt-get", *self.options(), "download", "-q", *pkgs], cwd=dest)
        if proc.returncode != 0:
            raise AptError(f"apt-get download failed ({self!r}):\n{proc.stderr.strip()}")
