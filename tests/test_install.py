"""kx loads into gdb from a checkout and from `pip install .` alike."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.gdb


def gdb_batch(*commands, env=None):
    argv = ["gdb", "-q", "-nx", "-batch"]
    for c in commands:
        argv += ["-ex", c]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def test_source_gdbinit_registers_kx():
    r = gdb_batch(f"source {ROOT}/scripts/gdbinit.py", "help kx", "python import pygments, elftools; print('DEPS-OK')")
    assert "inspect the Linux kernel's syscall entry path" in r.stdout
    assert "kx msr --" in r.stdout and "kx event --" in r.stdout  # the architecture's and the common commands
    assert "DEPS-OK" in r.stdout, r.stderr  # the venv reaches gdb's Python
    assert "Traceback" not in r.stdout + r.stderr


def test_pip_install_then_import(tmp_path):
    # From a copy without build/: setuptools would reuse a stale build/lib
    # and install modules (or whole packages) setup.py no longer names.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "build", ".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    # The commands live under gdbext, not as a generic top-level package.
    assert (target / "gdbext" / "commands" / "__init__.py").exists()
    assert not (target / "commands").exists()
    env = dict(os.environ, PYTHONPATH=str(target))
    r = gdb_batch("python import gdbext; print(gdbext.__file__)", "help kx", env=env)
    assert str(target) in r.stdout
    assert "inspect the Linux kernel's syscall entry path" in r.stdout
    assert "kx msr --" in r.stdout and "kx event --" in r.stdout
    assert "unavailable" not in r.stderr, r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_lab_help_on_every_subcommand():
    lab = os.path.join(ROOT, "scripts", "lab")
    for sub in ("bootstrap", "fetch", "initramfs", "boot", "stop", "status", "gdb", "demo"):
        r = subprocess.run([sys.executable, lab, sub, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage: lab " + sub in r.stdout


def test_commands_without_a_target_say_so():
    r = gdb_batch(f"source {ROOT}/scripts/gdbinit.py", "kx msr", "kx gdt --json", "kx tss", "echo ALIVE\\n")
    text = r.stdout + r.stderr
    assert "kx msr: no target" in text
    assert '{"error": "no target' in text
    assert "ALIVE" in text and "Traceback" not in text
