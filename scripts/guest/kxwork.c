/*
 * The lab guest's userland, one static binary with two roles:
 *
 *   /init         pid 1: mounts /proc and /dev, then runs and re-runs
 *                 /bin/kxwork, reaping every child.
 *   /bin/kxwork   the workload.  Each round it makes a fixed sequence of
 *                 system calls with known arguments, runs the two seed
 *                 programs, then /bin/kxseccomp and /bin/kxcreds (kxsec.c:
 *                 seccomp filters and credentials, their own KX-* lines),
 *                 and prints a heartbeat.
 *
 * Every system call in a round is issued with the raw `syscall` instruction,
 * never through a libc wrapper, so the order and the arguments are exactly
 * those printed in the KX-SEQ line (glibc 2.36 would turn nanosleep into
 * clock_nanosleep and open into openat behind our back).  The tests read the
 * KX-* lines from the serial console as their ground truth.
 *
 * Kernel command line knobs (in the environment: see kxguest.h):
 *   kxmode=spin   also start /bin/kxspin, a child doing back-to-back getpid,
 *                 for the breakpoint benchmarks.
 *   kxsleep_ms=N  the nanosleep in each round (default 20).
 *   kxspin_hz=N   the spinner makes about N getpid a second (in 100
 *                 batches) instead of going flat out.
 *   kxmode=strace each round also runs /bin/kxsys under Debian's strace
 *                 and prints strace's lines as KX-STRACE lines (the oracle
 *                 of tests/guest/test_strace_oracle.py).
 *
 * The spinner counts its own calls and prints KX-SPIN-RATE calls=N ns=T
 * line=L about four times a second: the guest's rate as the guest sees it,
 * traced or not (scripts/bench_trace.py), and, with the line numbers, how
 * many calls it made between any two of its lines a trace saw
 * (tests/guest/test_plugin_trace.py).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/auxv.h>
#include <time.h>

#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_nanosleep 35
#define NR_getpid 39
#define NR_openat 257
/* Far above NR_syscalls on every kernel we test and without the x32 bit
 * (0x40000000): do_syscall_64 must answer -ENOSYS. */
#define NR_invalid 1000

#define KX_TARGET_PATH "/etc/kx-target"
#define KX_MARK "KX-MARK\n"

#include "kxguest.h"
#include "raw_syscall.h"

/* /bin/kxsys under strace, then strace's output as KX-STRACE lines. */
static void run_strace_oracle(void)
{
	static const char out[] = "/tmp/kxsys.strace";
	char buf[8192];
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {"strace", "-s", "64", "-o", (char *)out, "/bin/kxsys", NULL};
		execv("/bin/strace", argv);
		_exit(127);
	}
	int status = 0;
	if (pid > 0)
		waitpid(pid, &status, 0);
	int fd = open(out, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (char *line = buf, *end; *line; line = end + 1) {
		end = strchr(line, '\n');
		if (!end)
			break;
		*end = 0;
		say("KX-STRACE %s\n", line);
	}
	say("KX-STRACE-END status=%d\n", status);
}

static long long ns_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static __attribute__((noreturn)) void spin_main(void)
{
	const char *env = getenv("kxspin_hz");
	long hz = env ? strtol(env, NULL, 0) : 0;
	long batch = hz > 0 ? (hz + 99) / 100 : 1024;
	unsigned long calls = 0, lines = 0;
	struct timespec last, now, next;

	say("KX-SPIN pid=%d hz=%ld\n", getpid(), hz);
	clock_gettime(CLOCK_MONOTONIC, &last);	/* the vDSO: no syscall */
	next = last;
	for (;;) {
		for (long i = 0; i < batch; i++)
			raw_syscall(NR_getpid, 0, 0, 0, 0, 0, 0);
		calls += batch;
		if (hz > 0) {
			next.tv_nsec += 10000000L;
			if (next.tv_nsec >= 1000000000L) {
				next.tv_sec++;
				next.tv_nsec -= 1000000000L;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (ns_between(&last, &now) >= 250000000LL) {
			say("KX-SPIN-RATE calls=%lu ns=%lld line=%lu\n", calls, ns_between(&last, &now),
			    ++lines);
			calls = 0;
			last = now;
		}
	}
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
	int oracle = env && strcmp(env, "strace") == 0;

	/* The ground truth the tests compare kx against. */
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
		int s32 = run_and_wait("/bin/hello32");
		int s64 = run_and_wait("/bin/hello64");
		int sys32 = run_and_wait("/bin/sysenter32");
		run_and_wait("/bin/kxseccomp");
		run_and_wait("/bin/kxcreds");
		if (oracle)
			run_strace_oracle();
		say("KX-HEARTBEAT round=%lu pid=%d fd=%ld invalid=%ld%s "
		    "hello32=%d hello64=%d sysenter32=%d\n",
		    round, getpid(), fd, bad, bad == -ENOSYS ? "(ENOSYS)" : "",
		    s32, s64, sys32);
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
