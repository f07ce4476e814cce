"""The system calls of the kernel being debugged: the entry points the rest
of kx uses, gathered from

  syscall_tables      nr -> handler -> name per ABI, and how the kernel dispatches
  syscall_signatures  parameters, from ftrace metadata or the DWARF
  syscall_check       the tables and switches in guest memory against the file

`abi` is a SyscallAbi or a word gdbext.arch.parse_abi accepts ("64", "32",
"ia32", "x32", ...).
"""
from gdbext.kernel.syscall_check import Problem, check, reference as check_reference
from gdbext.kernel.syscall_signatures import Signature, configured_out, signature
from gdbext.kernel.syscall_tables import Entry, Table, dispatch, handler, name, table

__all__ = ["table", "name", "handler", "dispatch", "signature", "configured_out", "check", "check_reference",
           "Table", "Entry", "Signature", "Problem"]
