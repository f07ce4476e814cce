"""Download .debs with a progress line, and pull single files out of them.

Nothing is installed: `dpkg-deb --fsys-tarfile` streams the package's data
into Python's tarfile, which keeps only the members asked for.  A member
that is a symlink is followed inside the package (sid's -dbg has
usr/lib/debug/boot/vmlinux-ABI -> ../lib/modules/ABI/vmlinux).
"""
import os
import pathlib
import posixpath
import shutil
import subprocess
import sys
import tarfile
import threading
import time

from . import bootstrap


def download(apt, pkgs: dict, dest: pathlib.Path, quiet: bool = False) -> dict:
    """apt-get download {name or name=version: size}; a progress line fed by
    the growing files.  Returns {"bytes", "seconds"}."""
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
    start = time.monotonic()
    try:
        apt.download(list(pkgs), dest)
    finally:
        done.set()
        t.join()
    return {"bytes": sum(f.stat().st_size for f in dest.glob("*.deb")),
            "seconds": round(time.monotonic() - start, 1)}



def apt_get_download(packages, dest: pathlib.Path) -> None:
    """`apt-get download PACKAGES` into dest, with the machine's own apt
    sources (nothing installed, nothing changed); RuntimeError on failure."""
    dest.chmod(0o777)   # apt drops to the _apt user when it can
    proc = subprocess.run(["apt-get", "download", "-q", *packages], cwd=dest,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get download failed: {proc.stderr.strip()[-500:]}")

def _norm(name: str) -> str:
    return posixpath.normpath(name[2:] if name.startswith("./") else name)


def extract(deb: pathlib.Path, wanted: dict, dest: pathlib.Path, min_size: dict = None,
            _depth: int = 0) -> set:
    """Write the members of `deb` named in `wanted` ({path in the package:
    file name in dest}) into dest.  The first member found for a name wins;
    `min_size` ({name: bytes}) passes over stubs (a System.map that only
    says where the real one is).  The stream stops as soon as every name is
    written: a -dbg's vmlinux comes before its modules' gigabytes.
    Returns the names written."""
    wanted = {_norm(k): v for k, v in wanted.items()}
    need, min_size, written, links = set(wanted.values()), min_size or {}, set(), {}
    deb_proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    try:
        with tarfile.open(fileobj=deb_proc.stdout, mode="r|") as tar:
            for m in tar:
                name = wanted.get(_norm(m.name))
                if name is None or name in written:
                    continue
                if m.issym():
                    path = _norm(m.name)
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), m.linkname))
                    wanted.setdefault(target, name)
                    links[target] = name
                elif m.isfile() and m.size >= min_size.get(name, 0):
                    with tar.extractfile(m) as src, open(dest / name, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    os.utime(dest / name, (m.mtime, m.mtime))
                    written.add(name)
                    if written >= need:
                        break
    finally:
        early = written >= need
        if early and deb_proc.poll() is None:
            deb_proc.terminate()
        deb_proc.stdout.close()
        rc = deb_proc.wait()
    if rc != 0 and not early:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb.name} failed ({rc})")
    # dpkg-deb stores symlinks after the files: a link's target may have
    # gone by already.  One more pass for those.
    again = {t: n for t, n in links.items() if n not in written}
    if again and _depth < 3:
        written |= extract(deb, again, dest, min_size, _depth + 1)
    return written


def extract_file(deb: pathlib.Path, member: str, dest: pathlib.Path) -> pathlib.Path:
    """One member of `deb`, written as dest (a full path)."""
    got = extract(deb, {member: dest.name}, dest.parent)
    if not got:
        raise RuntimeError(f"{member} is not in {deb.name}")
    return dest


def log_size(what: str, stats: dict) -> None:
    bootstrap.log(f"{what}: {stats['bytes'] / 1e6:.1f} MB in {stats['seconds']} s")
