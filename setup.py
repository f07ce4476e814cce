"""kx: a gdb extension for the Linux kernel's syscall entry path.

`pip install .` installs the library as the package `gdbext` and the
checkout's top-level commands/ directory as its subpackage `gdbext.commands`,
so no generic top-level name such as `commands` is claimed.  Inside gdb,
`python import gdbext` then registers every command.
"""
from setuptools import setup

setup(
    name="kx-gdb",
    version="0.1.0",
    description="GDB extension for debugging the Linux kernel's syscall entry path under QEMU",
    python_requires=">=3.9",
    packages=["gdbext", "gdbext.decoders", "gdbext.target", "gdbext.kernel",
              "gdbext.commands"],
    package_dir={"gdbext.commands": "commands"},
    package_data={"gdbext": ["data/*.json"]},
    install_requires=["pygments", "pyelftools"],
)
