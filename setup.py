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
    license="GPL-2.0-or-later",
    classifiers=["License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)"],
    python_requires=">=3.9",
    packages=["gdbext", "gdbext.decoders", "gdbext.machine", "gdbext.kernel",
              "gdbext.arch", "gdbext.arch.x86_64", "gdbext.arch.i386", "gdbext.arch.arm64",
              "gdbext.commands", "gdbext.commands.x86_64", "gdbext.commands.arm64"],
    package_dir={"gdbext.commands": "commands"},
    install_requires=["pygments", "pyelftools"],
    # `kx drgn` and gdbext.api.drgn_program(): pip install '.[drgn]'
    extras_require={"drgn": ["drgn>=0.3.0"]},
)
