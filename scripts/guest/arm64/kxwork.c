/*
 * The arm64 lab guest's userland, one static binary with two roles:
 *
 *   /init         pid 1: mounts /proc and /dev, then runs and re-runs
 *                 /bin/kxwork, reaping every child.
 *   /bin/kxwork   the workload.  Each round it makes a fixed sequence of
 *                 system calls with known arguments through a raw `svc #0`,
 *                 runs /bin/hello64 and /bin/hello32 (AArch32, a compat
 *                 task where the CPU and the kernel allow it), and prints a
 *                 heartbeat.  It starts /bin/stay32 once: an AArch32 task
 *                 that stays while the workload lives (its compat vDSO and
 *                 [sigpage] outlive a syscall).
 *
 * The same KX-* lines as the x86-64 workload (scripts/guest/kxwork.c), with
 * the generic syscall numbers (include/uapi/asm-generic/unistd.h).
 *
 * Knobs (in the environment, see ../kxguest.h): kxmode=spin (a child doing
 * back-to-back getpid), kxsleep_ms=N.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/auxv.h>
#include <time.h>

#define NR_openat 56
#define NR_close 57
#define NR_write 64
#define NR_nanosleep 101
#define NR_getpid 172
/* Far above NR_syscalls: invoke_syscall must answer -ENOSYS. */
#define NR_invalid 1000

#define KX_TARGET_PATH "/etc/kx-target"
#define KX_MARK "KX-MARK\n"

#include "../kxguest.h"

static long raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5,
			long a6)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a1;
	register long x1 __asm__("x1") = a2;
	register long x2 __asm__("x2") = a3;
	register long x3 __asm__("x3") = a4;
	register long x4 __asm__("x4") = a5;
	register long x5 __asm__("x5") = a6;
	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}

static __attribute__((noreturn)) void spin_main(void)
{
	say("KX-SPIN pid=%d hz=0\n", getpid());
	for (;;)
		raw_syscall(NR_getpid, 0, 0, 0, 0, 0, 0);
}

static __attribute__((noreturn)) void work_main(void)
{
	long sleep_ms = 20;
	const char *env = getenv("kxsleep_ms");
	if (env)
		sleep_ms = strtol(env, NULL, 0);
	env = getenv("kxmode");
	if (env && strcmp(env, "spin") == 0)
		spawn("/bin/kxspin");
	spawn("/bin/stay32");

	say("KX-WORK pid=%d vdso=0x%lx target=%s mark_len=%zu\n", getpid(),
	    getauxval(AT_SYSINFO_EHDR), KX_TARGET_PATH, strlen(KX_MARK));
	say("KX-SEQ %d,%d,%d,%d,%d,%d\n", NR_getpid, NR_write, NR_openat,
	    NR_close, NR_nanosleep, NR_invalid);

	struct timespec nap = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
	for (unsigned long round = 1;; round++) {
		raw_syscall(NR_getpid, 0, 0, 0, 0, 0, 0);
		raw_syscall(NR_write, 1, (long)KX_MARK, strlen(KX_MARK), 0, 0, 0);
		long fd = raw_syscall(NR_openat, AT_FDCWD, (long)KX_TARGET_PATH,
				      O_RDONLY, 0, 0, 0);
		raw_syscall(NR_close, fd, 0, 0, 0, 0, 0);
		raw_syscall(NR_nanosleep, (long)&nap, 0, 0, 0, 0, 0);
		long bad = raw_syscall(NR_invalid, 0x11, 0x22, 0x33, 0x44, 0x55,
				       0x66);
		int s64 = run_and_wait("/bin/hello64");
		int s32 = run_and_wait("/bin/hello32");
		say("KX-HEARTBEAT round=%lu pid=%d fd=%ld invalid=%ld%s "
		    "hello64=%d hello32=%d\n",
		    round, getpid(), fd, bad, bad == -ENOSYS ? "(ENOSYS)" : "",
		    s64, s32);
	}
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (getpid() == 1)
		init_main(argc, argv);
	if (strcmp(name, "kxspin") == 0)
		spin_main();
	work_main();
}
