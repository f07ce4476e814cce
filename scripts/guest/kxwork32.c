/*
 * The i386 lab guest's userland, one static 32-bit binary with two roles:
 *
 *   /init         pid 1: mounts /proc and /dev, then runs and re-runs
 *                 /bin/kxwork, reaping every child.
 *   /bin/kxwork   the workload.  Each round it makes a fixed sequence of
 *                 system calls with `int $0x80` and known arguments, one
 *                 write through libc's syscall() (glibc calls the vDSO's
 *                 __kernel_vsyscall), runs the seed's /bin/hello32 and
 *                 /bin/sysenter32, and prints a heartbeat.
 *
 * The numbers are the i386 table's (arch/x86/entry/syscalls/syscall_32.tbl).
 * Knobs come from the environment (see kxguest.h):
 *   kxsleep_ms=N  the nanosleep in each round (default 20).
 * The tests read the KX-* lines from the serial console as ground truth.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>

#define NR_close 6
#define NR_getpid 20
#define NR_write 4
#define NR_nanosleep 162
#define NR_openat 295
/* Far above NR_syscalls: do_int80_syscall_32 must answer -ENOSYS. */
#define NR_invalid 1000

#define KX_TARGET_PATH "/etc/kx-target"
#define KX_MARK "KX-MARK\n"
#define KX_LIBC_MARK "KX-LIBC\n"

#include "kxguest.h"

/* int $0x80: eax = nr, ebx ecx edx esi edi ebp = arguments 1-6.  ebp is
 * gcc's frame pointer candidate, so it is swapped in by hand. */
static __attribute__((noinline)) long int80(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	long block[2] = {nr, a6};
	long ret = (long)block;
	__asm__ volatile("push %%ebp\n\t"
			 "movl 4(%%eax), %%ebp\n\t"
			 "movl 0(%%eax), %%eax\n\t"
			 ".globl kxwork32_int80\n"
			 "kxwork32_int80:\n\t"
			 "int $0x80\n\t"
			 "pop %%ebp"
			 : "+a"(ret)
			 : "b"(a1), "c"(a2), "d"(a3), "S"(a4), "D"(a5)
			 : "memory");
	return ret;
}

static __attribute__((noreturn)) void work_main(void)
{
	long sleep_ms = 20;
	const char *env = getenv("kxsleep_ms");
	if (env)
		sleep_ms = strtol(env, NULL, 0);

	say("KX-WORK pid=%d vdso=0x%lx target=%s mark_len=%zu sysinfo=0x%lx\n", getpid(),
	    getauxval(AT_SYSINFO_EHDR), KX_TARGET_PATH, strlen(KX_MARK), getauxval(AT_SYSINFO));
	say("KX-SEQ %d,%d,%d,%d,%d,%d\n", NR_getpid, NR_write, NR_openat,
	    NR_close, NR_nanosleep, NR_invalid);

	struct timespec nap = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
	for (unsigned long round = 1;; round++) {
		int80(NR_getpid, 0, 0, 0, 0, 0, 0);
		int80(NR_write, 1, (long)KX_MARK, strlen(KX_MARK), 0, 0, 0);
		long fd = int80(NR_openat, AT_FDCWD, (long)KX_TARGET_PATH, O_RDONLY, 0, 0, 0);
		int80(NR_close, fd, 0, 0, 0, 0, 0);
		int80(NR_nanosleep, (long)&nap, 0, 0, 0, 0, 0);
		long bad = int80(NR_invalid, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66);
		long libc = syscall(SYS_write, 1, KX_LIBC_MARK, strlen(KX_LIBC_MARK));
		int s32 = run_and_wait("/bin/hello32");
		int sys32 = run_and_wait("/bin/sysenter32");
		say("KX-HEARTBEAT round=%lu pid=%d fd=%ld invalid=%ld%s libc=%ld "
		    "hello32=%d sysenter32=%d\n",
		    round, getpid(), fd, bad, bad == -ENOSYS ? "(ENOSYS)" : "", libc, s32, sys32);
	}
}

int main(int argc, char **argv)
{
	if (getpid() == 1)
		init_main(argc, argv);
	work_main();
}
