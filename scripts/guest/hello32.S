/* The seed's 32-bit hello: write(1, msg, len) then exit(0) through int $0x80.
 * i386 ABI: eax = nr, ebx, ecx, edx = args 1-3 (seed 002).  Built with
 * `as --32` and `ld -m elf_i386`: no multilib needed. */
	.globl _start
	.text
	.code32
_start:
	movl	$4, %eax		/* __NR_write (i386) */
	movl	$1, %ebx		/* fd: stdout */
	movl	$msg, %ecx		/* buf */
	movl	$len, %edx		/* count */
	.globl	hello32_int80_write
hello32_int80_write:
	int	$0x80
	.globl	hello32_after_write
hello32_after_write:
	movl	$1, %eax		/* __NR_exit (i386) */
	xorl	%ebx, %ebx
	int	$0x80

	/* The string sits in .text, on the page the CPU is already executing:
	 * a fresh exec's .data page is not present until first touched, and
	 * then no debugger can read the buffer at syscall entry. */
msg:	.ascii	"Hello from int $0x80 (32-bit)\n"
	.set	len, . - msg
