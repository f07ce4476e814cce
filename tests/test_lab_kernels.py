"""The lab's kernel plumbing without booting anything: System.map made from a
vmlinux (against Debian's own), the .deb member extraction (sid's -dbg
symlink, stub System.maps), the meta-package resolution of each suite, the
kernels built by hand, and the boot retry on an early oops (a stand-in
QEMU that writes the serial log)."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from kxlab import aptstate, debs, kernels, qemu, sysmap
from tests.conftest import KERNELS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("series", KERNELS)
def test_system_map_from_nm_is_debians(series):
    """Where Debian ships System.map (the -dbg), the one made from the vmlinux
    is line for line the same, but for the export strings 5.10's mksysmap
    still kept.  sid's 7.2 ships only a stub: the lab's map is nm's."""
    k = kernels.cached(series)
    if k is None:
        pytest.skip(f"no cached {series} kernel (./scripts/test fetches the kernels it tests)")
    ours = sysmap.lines(k.vmlinux)
    if '"linux-base-' in (k.root / "kernel.json").read_text():
        assert k.system_map.read_text().splitlines() == ours
        return
    debian = [l for l in k.system_map.read_text().splitlines() if " __kstrtab" not in l]
    assert ours == debian


def _deb(tmp_path, files: dict, links: dict) -> pathlib.Path:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: kx-test\nVersion: 1\nArchitecture: all\nMaintainer: kx <kx@localhost>\n"
        "Description: test\n")
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    for path, target in links.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / path)
    out = tmp_path / "kx-test-dbg_1_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    return out


def test_extract_follows_the_dbg_symlink_and_passes_over_stubs(tmp_path):
    abi = "7.2.13+deb14-cloud-amd64"
    deb = _deb(tmp_path, {f"usr/lib/debug/lib/modules/{abi}/vmlinux": b"ELF" * 100,
                          f"boot/System.map-{abi}": b"ffffffffffffffff B The real System.map is in the -dbg\n"},
               {f"usr/lib/debug/boot/vmlinux-{abi}": f"../lib/modules/{abi}/vmlinux"})
    out = tmp_path / "out"
    out.mkdir()
    got = debs.extract(deb, {f"./usr/lib/debug/boot/vmlinux-{abi}": "vmlinux",
                             f"./boot/System.map-{abi}": "System.map"}, out,
                       min_size={"System.map": sysmap.STUB_BYTES})
    assert got == {"vmlinux"}
    assert (out / "vmlinux").read_bytes() == b"ELF" * 100
    assert not (out / "System.map").exists()


class FakeApt:
    """apt-cache's answers for one suite, as resolve() asks them."""

    def __init__(self, depends: dict, packages: dict):
        self.deps, self.pkgs = depends, packages

    def depends(self, pkg):
        return self.deps[pkg]

    def show(self, *pkgs):
        return {p: self.pkgs[p] for p in pkgs if p in self.pkgs}


def test_resolve_sid_takes_linux_binary_and_linux_base(monkeypatch):
    abi = "7.2.13+deb14-cloud-amd64"
    apt = FakeApt(
        {"linux-image-cloud-amd64": ["linux-base-cloud-amd64", f"linux-image-{abi}"],
         "linux-image-cloud-amd64-dbg": ["linux-base-cloud-amd64", f"linux-image-{abi}-dbg"]},
        {f"linux-binary-{abi}": {"Version": "7.2.13-1", "Size": "13717736"},
         f"linux-base-{abi}": {"Version": "7.2.13-1", "Size": "417436"},
         f"linux-image-{abi}": {"Version": "7.2.13-1", "Size": "1000"},
         f"linux-image-{abi}-dbg": {"Version": "7.2.13-1", "Size": "353132752"}})
    monkeypatch.setattr(kernels, "series_apt", lambda series, arch="x86_64": apt)
    info = kernels.resolve("7.2")
    assert info["abi"] == abi and info["version"] == "7.2.13-1" and info["suite"] == "sid"
    assert set(info["packages"]) == {f"linux-binary-{abi}", f"linux-base-{abi}", f"linux-image-{abi}-dbg"}


def test_resolve_bullseye_takes_the_unsigned_image(monkeypatch):
    abi = "5.10.0-32-cloud-amd64"
    apt = FakeApt(
        {"linux-image-cloud-amd64": [f"linux-image-{abi}"],
         "linux-image-cloud-amd64-dbg": [f"linux-image-{abi}-dbg"]},
        {f"linux-image-{abi}-unsigned": {"Version": "5.10.223-1", "Size": "20768532"},
         f"linux-image-{abi}-dbg": {"Version": "5.10.223-1", "Size": "261126384"}})
    monkeypatch.setattr(kernels, "series_apt", lambda series, arch="x86_64": apt)
    info = kernels.resolve("5.10")
    assert info["abi"] == abi and info["suite"] == "bullseye"
    assert set(info["packages"]) == {f"linux-image-{abi}-unsigned", f"linux-image-{abi}-dbg"}


def test_resolve_refuses_a_meta_that_moved_to_another_series(monkeypatch):
    apt = FakeApt({"linux-image-cloud-amd64": ["linux-image-7.3.1+deb14-cloud-amd64"]}, {})
    monkeypatch.setattr(kernels, "series_apt", lambda series, arch="x86_64": apt)
    with pytest.raises(RuntimeError, match="not a 7.2 kernel"):
        kernels.resolve("7.2")


def test_resolve_i386_takes_the_686_pae_unsigned_image(monkeypatch):
    abi = "6.1.0-50-686-pae"
    apt = FakeApt(
        {"linux-image-686-pae": [f"linux-image-{abi}"],
         "linux-image-686-pae-dbg": [f"linux-image-{abi}-dbg"]},
        {f"linux-image-{abi}-unsigned": {"Version": "6.1.176-1", "Size": "52000000"},
         f"linux-image-{abi}-dbg": {"Version": "6.1.176-1", "Size": "765000000"}})
    monkeypatch.setattr(kernels, "series_apt", lambda series, arch="x86_64": apt)
    info = kernels.resolve("6.1", "i386")
    assert info["abi"] == abi and info["arch"] == "i386" and info["suite"] == "bookworm"
    assert set(info["packages"]) == {f"linux-image-{abi}-unsigned", f"linux-image-{abi}-dbg"}


def test_i386_apt_state_is_private_and_names_its_architecture(cache):
    apt = kernels.series_apt("6.1", "i386")
    opts = apt.options()
    assert f"Dir::State::Lists={cache}/apt/bookworm-i386/lists" in opts
    assert "APT::Architecture=i386" in opts and "APT::Architectures=i386" in opts
    assert kernels.series_apt("6.1").options() == []     # amd64 6.1: the system's own apt
    with pytest.raises(SystemExit, match="no i386 kernel '6.12'"):
        kernels.series_info("6.12", "i386")


def test_private_apt_state_keeps_off_the_system(cache):
    opts = aptstate.Apt("sid").options()
    assert f"Dir::State::Lists={cache}/apt/sid/lists" in opts
    assert "Dir::Etc::sourceparts=-" in opts
    assert all("/etc/apt" not in o and "/var/lib/apt" not in o for o in opts)
    assert aptstate.Apt(None).options() == []


def _tiny_vmlinux(tmp_path) -> pathlib.Path:
    src = tmp_path / "v.c"
    src.write_text(textwrap.dedent("""\
        const char linux_banner[] = "Linux version 9.9.9-kx-test (kx@lab) #1 SMP\\n";
        int entry_SYSCALL_64(void) { return 0; }
        static int local_thing(void) { return 1; }
        int (*keep)(void) = local_thing;
    """))
    out = tmp_path / "build" / "vmlinux"
    out.parent.mkdir()
    subprocess.run(["gcc", "-c", "-o", str(out), str(src)], check=True)
    return out


def test_custom_kernel_gets_a_system_map(cache, tmp_path):
    vmlinux = _tiny_vmlinux(tmp_path)
    image = tmp_path / "build" / "bzImage"
    image.write_bytes(b"\0" * 512)
    k = kernels.custom(image, vmlinux, warm=False)
    assert k.series == "custom" and k.abi == "9.9.9-kx-test"
    assert k.vmlinuz == image and k.vmlinux == vmlinux
    assert k.system_map.parent.parent == cache / "custom"
    syms = k.symbols()
    assert "entry_SYSCALL_64" in syms and "local_thing" in syms and "linux_banner" in syms
    for line in k.system_map.read_text().splitlines():
        addr, kind, name = line.split()
        assert len(addr) == 16 and kind not in "aNUw" and not name.startswith(".L")
    # A real System.map beside the vmlinux (a build tree's) wins.
    real = vmlinux.parent / "System.map"
    real.write_text(k.system_map.read_text() * 2000)
    assert kernels.custom(image, vmlinux, warm=False).system_map == real


def test_a_kernel_image_alone(cache, tmp_path):
    """--kernel-image with --no-vmlinux: the release from the setup header
    (Documentation/arch/x86/boot.rst: "HdrS" at 0x202, kernel_version at
    0x20E pointing 0x200 before the string), no vmlinux, no System.map."""
    header = bytearray(0x600)
    header[0x202:0x206] = b"HdrS"
    header[0x20E:0x210] = (0x300).to_bytes(2, "little")
    header[0x500:0x520] = b"6.1.0-99-kx-test (x@y) #1 SMP\0"
    image = tmp_path / "bzImage"
    image.write_bytes(bytes(header))
    k = kernels.image_only(image)
    assert (k.series, k.abi, k.vmlinuz, k.has_vmlinux) == ("custom", "6.1.0-99-kx-test", image, False)
    assert k.root.parent == cache / "custom"
    image.write_bytes(b"\0" * 512)                 # no setup header: still bootable by name
    assert kernels.image_release(image) == "" and kernels.image_only(image).abi == "custom"
    with pytest.raises(SystemExit):
        kernels.image_only(tmp_path / "missing")
    if kernels.cached("6.1") is not None:         # Debian's own vmlinuz names its release
        assert kernels.image_release(kernels.cached("6.1").vmlinuz) == kernels.cached("6.1").abi


FAKE_QEMU = """\
import os, sys, time
serial = next(a.split(":", 1)[1] for a in sys.argv if a.startswith("file:"))
state = os.environ["KX_FAKE_STATE"]
n = int(open(state).read()) if os.path.exists(state) else 0
open(state, "w").write(str(n + 1))
script = os.environ["KX_FAKE_BOOTS"].split(",")[n]
with open(serial, "a") as f:
    f.write("[    0.1] Linux version 7.2.13\\n")
    if script == "oops":
        f.write("[    0.5] Oops: int3: 0000 [#1] SMP NOPTI\\n[    0.5] RIP: sched_clock_cpu+0x5/0x1d0\\n")
        f.write("[    0.6] Kernel panic - not syncing: Fatal exception in interrupt\\n")
        f.flush()
        sys.exit(0)                  # panic=-1 with -no-reboot: QEMU ends
    if script == "die":
        sys.exit(1)
    f.write("KX-WORK pid=42 vdso=0x7fff0000 target=/etc/kx-target\\nKX-HEARTBEAT round=1\\n")
time.sleep(60)
"""


@pytest.fixture
def fake_guest(tmp_path, monkeypatch):
    script = tmp_path / "fake-qemu"
    script.write_text(f"#!{sys.executable}\n" + FAKE_QEMU)
    script.chmod(0o755)
    monkeypatch.setenv("KX_QEMU", str(script))
    monkeypatch.setenv("KX_FAKE_STATE", str(tmp_path / "boots"))
    monkeypatch.setenv("KX_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(qemu.initramfs, "build_for", lambda kernel: tmp_path / "initrd")
    kernel = kernels.Kernel("7.2", "7.2.13+deb14-cloud-amd64", "7.2.13-1", tmp_path)

    def make(boots):
        monkeypatch.setenv("KX_FAKE_BOOTS", boots)
        return qemu.Guest(qemu.BootOptions(kernel="7.2"), kernel=kernel)
    return make


def test_boot_again_after_an_early_oops(fake_guest, capsys):
    guest = fake_guest("oops,ok")
    try:
        guest.start(timeout=20)
        assert "KX-HEARTBEAT" in guest.serial()
        assert [f["attempt"] for f in guest.boot_failures] == [1]
        assert guest.boot_failures[0]["line"].startswith("Oops: int3")
        assert "Oops: int3" in pathlib.Path(guest.boot_failures[0]["serial"]).read_text()
        assert guest.describe()["boot_failures"] == guest.boot_failures
    finally:
        guest.stop()
    assert "boot 1/3 of 7.2.13+deb14-cloud-amd64: the kernel crashed" in capsys.readouterr().err


def test_boot_gives_up_after_three_crashes(fake_guest):
    guest = fake_guest("oops,oops,oops,ok")
    with pytest.raises(RuntimeError, match="crashed in each of 3 boots: Oops: int3"):
        guest.start(timeout=20)
    guest.stop()


def test_a_qemu_that_fails_is_not_booted_again(fake_guest):
    guest = fake_guest("die,ok")
    with pytest.raises(RuntimeError, match="QEMU exited with 1"):
        guest.start(timeout=20)
    guest.stop()
    assert guest.boot_failures == []


def test_source_tree_of_the_kernel_version_first(cache):
    from kxlab import sources
    import json
    import time as _time
    for name, kver in (("linux-source-6.1_6.1.192-3", "6.1.192-3"), ("linux-source-6.1_6.1.200-1", "6.1.200-1")):
        d = sources.src_dir() / name
        d.mkdir(parents=True)
        (d / "source.json").write_text(json.dumps({"series": "6.1", "kernel_version": kver}))
        _time.sleep(0.01)
    assert sources.cached("6.1", "6.1.192-3").name == "linux-source-6.1_6.1.192-3"
    assert sources.cached("6.1", "6.1.999-1").name == "linux-source-6.1_6.1.200-1"   # the newest
    assert sources.cached("6.12") is None


def test_sweep_staging_keeps_live_fetches(tmp_path):
    old, new = tmp_path / ".staging-old", tmp_path / ".staging-new"
    for d in (old, new):
        (d / "debs").mkdir(parents=True)
    os.utime(old, (0, 0))
    kernels.sweep_staging(tmp_path)
    assert not old.exists() and new.exists()
