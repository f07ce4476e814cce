/* The AArch32 hello, run as a compat task: write(1, msg, len) then exit(0)
 * through `svc 0`.  EABI: r7 = nr, r0-r5 = args (arch/arm/kernel/entry-common.S;
 * arm64 serves it through el0_svc_compat and compat_sys_call_table). */
	.syntax	unified
	.arm
	.globl _start
	.text
_start:
	mov	r7, #4			/* __NR_write (arch/arm/tools/syscall.tbl) */
	mov	r0, #1			/* fd: stdout */
	adr	r1, msg			/* buf */
	mov	r2, #len		/* count */
	.globl	hello32_svc_write
hello32_svc_write:
	svc	0
	.globl	hello32_after_write
hello32_after_write:
	mov	r7, #1			/* __NR_exit */
	mov	r0, #0
	svc	0

msg:	.ascii	"Hello from svc (arm32)\n"
	.set	len, . - msg
	.align	2
