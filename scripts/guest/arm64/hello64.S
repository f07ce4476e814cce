/* The arm64 hello: write(1, msg, len) then exit(0) through `svc #0`.
 * AArch64 Linux ABI: x8 = nr, x0-x5 = args (arch/arm64/kernel/syscall.c).
 * Tests compare kx's pt_regs with exactly these values, so keep them
 * literal. */
	.globl _start
	.text
_start:
	mov	x8, #64			/* __NR_write (asm-generic/unistd.h) */
	mov	x0, #1			/* fd: stdout */
	adr	x1, msg			/* buf */
	mov	x2, #len		/* count */
	.globl	hello64_svc_write
hello64_svc_write:
	svc	#0
	.globl	hello64_after_write
hello64_after_write:
	mov	x8, #93			/* __NR_exit */
	mov	x0, #0
	svc	#0

	/* In .text, on the page the CPU is already executing (see the x86
	 * hello64.S: a fresh .data page is not present at syscall entry). */
msg:	.ascii	"Hello from svc (arm64)\n"
	.set	len, . - msg
