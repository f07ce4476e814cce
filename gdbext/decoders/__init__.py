"""Pure decoders: bytes/ints in, structured values out (no gdb import).

  bits          flag/field helpers, the Record base (to_dict)
  msr           syscall-path MSR table, lookup_msr, EFER/STAR/SFMASK/TSC_AUX
  descriptors   selectors, GDT descriptors, IDT gates, Linux GDT layout
  tss           64-bit and 32-bit TSS, IST slot names
  ptregs        struct pt_regs, syscall argument registers
  flags         task state, PF_*, TIF_*, TS_*, SYSCALL_WORK_* per version
  syscall_args  strace-style argument and return-value formatting
  paging        x86-64 4/5-level page walk, CR3/PTI helpers
  x86insn       ModRM/SIB lengths, the multi-byte NOP
  x86_switch    the syscall dispatch switch (x64_sys_call) from its machine code

Malformed input raises gdbext.errors.DecodeError and nothing else.
"""
