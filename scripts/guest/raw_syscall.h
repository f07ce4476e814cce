/*
 * A system call through the raw `syscall` instruction (x86-64 ABI: nr in
 * rax, arguments in rdi, rsi, rdx, r10, r8, r9; rcx and r11 clobbered),
 * never a libc wrapper: kxwork.c and kxsys.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef KX_RAW_SYSCALL_H
#define KX_RAW_SYSCALL_H

static long raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5,
                        long a6)
{
	long ret;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10),
			   "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#endif
