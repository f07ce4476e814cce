/* A 32-bit hello that enters the kernel the way 32-bit libc does: through
 * the vDSO's __kernel_vsyscall (AT_SYSINFO in the auxiliary vector), which
 * the kernel patched at boot to `sysenter` on Intel CPUs (SYSENTER32), to
 * `syscall` on AMD (SYSCALL32), or left as `int $0x80`.  write(1, msg, len)
 * then exit(0).  Built with `as --32` and `ld -m elf_i386`. */
	.globl _start
	.text
	.code32
_start:
	/* The initial stack: argc, argv[], NULL, envp[], NULL, auxv pairs. */
	movl	(%esp), %eax		/* argc */
	leal	8(%esp,%eax,4), %esi	/* envp */
1:	movl	(%esi), %eax
	addl	$4, %esi
	testl	%eax, %eax
	jnz	1b			/* esi = auxv */
2:	movl	(%esi), %eax
	testl	%eax, %eax		/* AT_NULL: no vDSO, fall back to int $0x80 */
	jz	4f
	cmpl	$32, %eax		/* AT_SYSINFO */
	je	3f
	addl	$8, %esi
	jmp	2b
3:	movl	4(%esi), %edi		/* __kernel_vsyscall */
	movl	$4, %eax		/* __NR_write (i386) */
	movl	$1, %ebx
	movl	$msg, %ecx
	movl	$len, %edx
	.globl	sysenter32_call
sysenter32_call:
	call	*%edi
	jmp	5f
4:	movl	$4, %eax
	movl	$1, %ebx
	movl	$msg, %ecx
	movl	$len, %edx
	int	$0x80
5:	movl	$1, %eax		/* __NR_exit (i386) */
	xorl	%ebx, %ebx
	int	$0x80

	/* In .text: see hello32.S. */
msg:	.ascii	"Hello from __kernel_vsyscall (32-bit)\n"
	.set	len, . - msg
