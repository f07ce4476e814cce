"""One real kernel module for the guest, from the kernel's own packages.

The guest's /init (scripts/guest/kxboot.c) loads every module in
/lib/modules/kx/ and prints what the kernel says about it, so `kx modules`
has a live module to list and `kx modules --load-symbols` a Debian -dbg
module file to load.  MODULE is small, depends on nothing, and only
registers an NLS table when loaded.

Per kernel, under its cache directory: modules/NAME.ko (from the image
package; 6.12 ships it xz-compressed, so it is unpacked here) and
modules/dbg/NAME.ko (from the -dbg package, with DWARF).  Both packages
are fetched again only if these are missing (`apt-get download`, as
kernels.py does); a machine that cannot fetch boots without the module.
"""
import lzma
import pathlib
import shutil
import subprocess
import tempfile
from typing import Optional

from . import bootstrap

MODULE = "nls_utf8"
MODULE_PATH = "kernel/fs/nls/nls_utf8.ko"


def module_dir(kernel) -> pathlib.Path:
    return pathlib.Path(kernel.root) / "modules"


def paths(kernel) -> dict:
    d = module_dir(kernel)
    return {"module": d / f"{MODULE}.ko", "dbg": d / "dbg" / f"{MODULE}.ko"}


def _extract(deb: pathlib.Path, pattern: str, dest: pathlib.Path) -> Optional[pathlib.Path]:
    """The one member of `deb` matching `pattern` (tar wildcards), or None."""
    tar = subprocess.Popen(["tar", "-x", "-C", str(dest), "--wildcards", pattern],
                           stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deb_proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=tar.stdin)
    tar.stdin.close()
    deb_proc.wait()
    tar.wait()
    hits = [p for p in dest.rglob(pathlib.Path(pattern).name.replace("*", "") + "*") if p.is_file()]
    return hits[0] if hits else None


def _fetch(kernel, out: dict) -> None:
    packages = list(kernel_packages(kernel))
    with tempfile.TemporaryDirectory(prefix="kx-modules-") as tmp:
        tmp = pathlib.Path(tmp)
        # The kernel's own suite (bullseye, sid: a private apt state), not
        # the system's.
        from . import kernels
        kernels.series_apt(kernel.series, getattr(kernel, "arch", kernels.DEFAULT_ARCH)).download(packages, tmp)
        for deb in tmp.glob("*.deb"):
            dbg = "-dbg_" in deb.name
            stage = tmp / ("x-" + deb.stem)
            stage.mkdir()
            # sid's packages are merged-/usr: usr/lib/modules, and the -dbg
            # copy under usr/lib/debug/usr/lib/modules too.
            prefix = "*/lib/modules/" + kernel.abi + "/"
            found = _extract(deb, prefix + MODULE_PATH + "*", stage)
            if found is None:
                continue      # linux-base (sid): the config, no modules
            target = out["dbg" if dbg else "module"]
            target.parent.mkdir(parents=True, exist_ok=True)
            data = found.read_bytes()
            if found.suffix == ".xz":
                data = lzma.decompress(data)
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            partial.rename(target)
        missing = [k for k, p in out.items() if not p.exists()]
        if missing:
            raise RuntimeError(f"no {MODULE_PATH} ({', '.join(missing)}) in {', '.join(packages)}")


def kernel_packages(kernel):
    """The packages with the module: the image's and the -dbg package of a
    fetched kernel (kernel.json), plus sid's linux-modules-ABI (since 7.x
    Debian splits the modules out of the image package)."""
    import json
    info = json.loads((pathlib.Path(kernel.root) / "kernel.json").read_text())
    names = list(info["packages"])
    if any(n.startswith("linux-binary-") for n in names):
        names.append(f"linux-modules-{kernel.abi}")
    return [n for n in names if not n.startswith("linux-base-")]


def ensure(kernel) -> Optional[dict]:
    """{"module": path, "dbg": path} for `kernel`, fetching them once; None
    (and one log line) when they cannot be had."""
    out = paths(kernel)
    if all(p.exists() for p in out.values()):
        return out
    try:
        bootstrap.log(f"fetching the {MODULE} module of {kernel.abi} for the guest")
        _fetch(kernel, out)
    except (OSError, RuntimeError, KeyError, ValueError, lzma.LZMAError, subprocess.SubprocessError) as exc:
        bootstrap.log(f"no kernel module for the guest: {exc}")
        shutil.rmtree(module_dir(kernel), ignore_errors=True)
        return None
    return out
