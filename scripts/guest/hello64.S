/* The seed's 64-bit hello: write(1, msg, len) then exit(0) through `syscall`.
 * x86-64 ABI: rax = nr, rdi, rsi, rdx = args 1-3 (seed 002).  Tests compare
 * kx's pt_regs with exactly these values, so keep them literal. */
	.globl _start
	.text
_start:
	movq	$1, %rax		/* __NR_write (x86-64) */
	movq	$1, %rdi		/* fd: stdout */
	leaq	msg(%rip), %rsi		/* buf */
	movq	$len, %rdx		/* count */
	.globl	hello64_syscall_write
hello64_syscall_write:
	syscall
	.globl	hello64_after_write
hello64_after_write:
	movq	$60, %rax		/* __NR_exit */
	xorq	%rdi, %rdi
	syscall

	/* The string sits in .text, on the page the CPU is already executing:
	 * a fresh exec's .data page is not present until first touched, and
	 * then no debugger can read the buffer at syscall entry. */
msg:	.ascii	"Hello from syscall (64-bit)\n"
	.set	len, . - msg
