"""kx's lab: fetch Debian kernels, build the guest userland, boot QEMU, attach gdb.

The lab is part of the product: `./scripts/lab` is its command line and the
test suite drives guests through the very same code.  It needs only the
Python standard library, so it runs on any python3 before the venv exists.
"""
