/*
 * An AArch32 task that stays: the compat vDSO and [sigpage] are the mm's,
 * so a debugger needs the task alive to see them (hello32 exits at once).
 *
 * It touches its compat pages so that they are faulted in: it reads the
 * vDSO's ELF header (AT_SYSINFO_EHDR), the kuser helpers' version word at
 * 0xffff0ffc ([vectors]), and returns from a SIGUSR1 handler installed
 * without SA_RESTORER, which the kernel makes return through its [sigpage]
 * (compat_setup_return, arch/arm64/kernel/signal32.c).  Then it prints its
 * pid, what it read and its own /proc/self/maps (the kernel's list of the
 * [vdso], [vvar], [sigpage] and [vectors]) between KX-STAY32 lines, and
 * sleeps a second at a time (compat nanosleep, r7 = 162) until its parent,
 * the workload, is gone (getppid() == 1).
 *
 * No libc: built with clang --target=armv7a-linux-gnueabihf -ffreestanding
 * and linked by arm-linux-gnueabihf-ld.  EABI: `svc 0`, r7 = nr, r0-r2 =
 * args (arch/arm/tools/syscall.tbl).  A SIGUSR1 left at its default would
 * kill it: if rt_sigaction fails, so does the task, visibly (no KX-STAY32).
 */
#define NR_exit 1
#define NR_read 3
#define NR_write 4
#define NR_open 5
#define NR_close 6
#define NR_getpid 20
#define NR_kill 37
#define NR_getppid 64
#define NR_nanosleep 162
#define NR_rt_sigaction 174
#define SIGUSR1 10
#define AT_SYSINFO_EHDR 33
#define KUSER_HELPER_VERSION 0xffff0ffc	/* arch/arm/kernel/entry-armv.S */

static long sys4(long nr, long a, long b, long c, long d)
{
	register long r7 __asm__("r7") = nr;
	register long r0 __asm__("r0") = a;
	register long r1 __asm__("r1") = b;
	register long r2 __asm__("r2") = c;
	register long r3 __asm__("r3") = d;
	__asm__ volatile("svc 0"
			 : "+r"(r0)
			 : "r"(r7), "r"(r1), "r"(r2), "r"(r3)
			 : "memory");
	return r0;
}

static long sys3(long nr, long a, long b, long c)
{
	return sys4(nr, a, b, c, 0);
}

static char out[8192];
static unsigned long used;

static void add(const char *s)
{
	while (*s && used < sizeof(out))
		out[used++] = *s++;
}

static void add_number(unsigned long value, unsigned base)
{
	char digits[12];
	int i = sizeof(digits) - 1;
	digits[i] = 0;
	do {
		digits[--i] = "0123456789abcdef"[value % base];
		value /= base;
	} while (value && i > 0);
	if (base == 16)
		add("0x");
	add(digits + i);
}

static volatile long handled;

static void on_signal(int sig)
{
	handled = sig;
}

/* struct compat_sigaction for rt_sigaction (no SA_RESTORER: the kernel's
 * [sigpage] is the return path). */
static void raise_usr1(void)
{
	struct {
		unsigned long handler, flags, restorer, mask[2];
	} act = {(unsigned long)on_signal, 0, 0, {0, 0}};
	sys4(NR_rt_sigaction, SIGUSR1, (long)&act, 0, sizeof(act.mask));
	sys3(NR_kill, sys3(NR_getpid, 0, 0, 0), SIGUSR1, 0);
}

static unsigned long auxv_value(long *sp, unsigned long type)
{
	long argc = sp[0];
	long *p = sp + 1 + argc + 1;	/* past argv and its NULL */
	while (*p)
		p++;			/* past envp */
	for (p++; p[0]; p += 2)
		if ((unsigned long)p[0] == type)
			return p[1];
	return 0;
}

static void add_maps(void)
{
	long fd = sys3(NR_open, (long)"/proc/self/maps", 0, 0);
	long n;
	if (fd < 0)
		return;
	while (used < sizeof(out) &&
	       (n = sys3(NR_read, fd, (long)(out + used), sizeof(out) - used)) > 0)
		used += n;
	sys3(NR_close, fd, 0, 0);
}

void stay_main(long *sp)
{
	struct {
		long sec, nsec;
	} second = {1, 0};
	unsigned long vdso = auxv_value(sp, AT_SYSINFO_EHDR);
	unsigned long elf = vdso ? *(volatile unsigned long *)vdso : 0;
	unsigned long kuser = *(volatile unsigned long *)KUSER_HELPER_VERSION;
	raise_usr1();
	/* One write, so that the workload's lines cannot land inside it. */
	add("KX-STAY32 pid=");
	add_number(sys3(NR_getpid, 0, 0, 0), 10);
	add(" vdso=");
	add_number(vdso, 16);
	add(" vdso_magic=");
	add_number(elf, 16);
	add(" kuser_version=");
	add_number(kuser, 10);
	add(" signal=");
	add_number(handled, 10);
	add(" maps:\n");
	add_maps();
	add("KX-STAY32 end\n");
	sys3(NR_write, 1, (long)out, used);
	while (sys3(NR_getppid, 0, 0, 0) != 1)
		sys3(NR_nanosleep, (long)&second, 0, 0);
	sys3(NR_exit, 0, 0, 0);
	for (;;)
		;
}

/* The initial sp holds argc, argv, envp and the auxiliary vector. */
__asm__(".globl _start\n"
	"_start:\n"
	"	mov	r0, sp\n"
	"	b	stay_main\n");
