/*
 * /bin/kxsys: the strace oracle's workload.  kxwork runs it under Debian's
 * strace when booted with kxmode=strace, and tests/guest/test_strace_oracle.py
 * compares strace's lines with kx trace's for the same process.
 *
 * No libc: every system call below is the program's own, issued with the
 * raw `syscall` instruction, so the list strace sees is exactly this one
 * (glibc's start-up would add a dozen calls of its own).  It exercises
 * the decoders: open flags and modes, ioctl requests, mmap/mprotect,
 * sockets, sigaction and sigprocmask, timespecs and clocks, clone and
 * clone3, wait4 with its status, and failing calls with their errno.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define NR_write 1
#define NR_close 3
#define NR_mmap 9
#define NR_mprotect 10
#define NR_munmap 11
#define NR_rt_sigaction 13
#define NR_rt_sigprocmask 14
#define NR_ioctl 16
#define NR_nanosleep 35
#define NR_getpid 39
#define NR_socket 41
#define NR_clone 56
#define NR_wait4 61
#define NR_clock_nanosleep 230
#define NR_exit_group 231
#define NR_openat 257
#define NR_clone3 435

#define AT_FDCWD -100
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_CLOEXEC 02000000
#define TCGETS 0x5401
#define FIONBIO 0x5421
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define AF_UNIX 1
#define AF_INET 2
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_CLOEXEC O_CLOEXEC
#define IPPROTO_TCP 6
#define SIGKILL 9
#define SIGUSR1 10
#define SIGUSR2 12
#define SIGTERM 15
#define SIGCHLD 17
#define SA_RESTORER 0x04000000
#define SA_RESTART 0x10000000
#define SIG_BLOCK 0
#define WNOHANG 1
#define __WALL 0x40000000
#define CLOCK_MONOTONIC 1

struct kernel_sigaction {       /* include/linux/signal_types.h, x86-64 */
	unsigned long handler, flags, restorer, mask;
};
struct timespec64 {
	long sec, nsec;
};
struct clone_args {             /* include/uapi/linux/sched.h */
	unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};

#include "raw_syscall.h"
#define sc raw_syscall

static void on_signal(void) {}
static void restorer(void) {}

static unsigned long length(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static void say_pid(long pid)
{
	static char line[32] = "KX-SYS pid=";
	char digits[20];
	int n = 0, at = 11;
	do {
		digits[n++] = '0' + pid % 10;
		pid /= 10;
	} while (pid);
	while (n)
		line[at++] = digits[--n];
	line[at++] = '\n';
	sc(NR_write, 1, (long)line, at, 0, 0, 0);
}

/* A child that only exits (clone and clone3 without CLONE_VM: a fork). */
static void child_exits_with(long ret, int code)
{
	if (ret == 0)
		sc(NR_exit_group, code, 0, 0, 0, 0, 0);
}

static void files_and_memory(void)
{
	char termios[64];
	long one = 1;
	long fd = sc(NR_openat, AT_FDCWD, (long)"/etc/kx-target", O_CLOEXEC, 0, 0, 0);
	sc(NR_ioctl, fd, TCGETS, (long)termios, 0, 0, 0);
	sc(NR_openat, AT_FDCWD, (long)"/kx/missing", 0, 0, 0, 0);
	long out = sc(NR_openat, AT_FDCWD, (long)"/tmp/kxsys.out", O_WRONLY | O_CREAT | O_TRUNC, 0640, 0, 0);
	sc(NR_ioctl, out, FIONBIO, (long)&one, 0, 0, 0);
	sc(NR_close, out, 0, 0, 0, 0, 0);
	sc(NR_close, fd, 0, 0, 0, 0, 0);
	long p = sc(NR_mmap, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sc(NR_mprotect, p, 4096, PROT_READ, 0, 0, 0);
	sc(NR_mprotect, p + 1, 4096, PROT_READ, 0, 0, 0);
	sc(NR_munmap, p, 8192, 0, 0, 0, 0);
	long s1 = sc(NR_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, 0, 0, 0);
	long s2 = sc(NR_socket, AF_INET, SOCK_STREAM, IPPROTO_TCP, 0, 0, 0);
	sc(NR_close, s2, 0, 0, 0, 0, 0);
	sc(NR_close, s1, 0, 0, 0, 0, 0);
}

static void signals_and_time(void)
{
	struct kernel_sigaction usr1 = {(unsigned long)on_signal, SA_RESTORER | SA_RESTART,
					(unsigned long)restorer, 1UL << (SIGTERM - 1)};
	struct kernel_sigaction ign = {1, 0, 0, 0}, old;
	unsigned long chld = 1UL << (SIGCHLD - 1), was;
	struct timespec64 nap = {0, 1000000};
	sc(NR_rt_sigaction, SIGUSR1, (long)&usr1, 0, 8, 0, 0);
	sc(NR_rt_sigaction, SIGUSR2, (long)&ign, (long)&old, 8, 0, 0);
	sc(NR_rt_sigaction, SIGKILL, (long)&ign, 0, 8, 0, 0);
	/* Blocked, SIGCHLD stays pending: no signal stop interrupts wait4. */
	sc(NR_rt_sigprocmask, SIG_BLOCK, (long)&chld, (long)&was, 8, 0, 0);
	sc(NR_nanosleep, (long)&nap, 0, 0, 0, 0, 0);
	sc(NR_clock_nanosleep, CLOCK_MONOTONIC, 0, (long)&nap, 0, 0, 0);
}

static void children(void)
{
	int status;
	struct clone_args args = {0};
	long pid = sc(NR_clone, SIGCHLD, 0, 0, 0, 0, 0);
	child_exits_with(pid, 3);
	sc(NR_wait4, pid, (long)&status, 0, 0, 0, 0);
	sc(NR_wait4, -1, 0, WNOHANG, 0, 0, 0);
	args.exit_signal = SIGCHLD;
	pid = sc(NR_clone3, (long)&args, sizeof(args), 0, 0, 0, 0);
	child_exits_with(pid, 4);
	sc(NR_wait4, pid, (long)&status, __WALL, 0, 0, 0);
}

void kxsys_main(void)
{
	say_pid(sc(NR_getpid, 0, 0, 0, 0, 0, 0));
	files_and_memory();
	signals_and_time();
	children();
	sc(NR_write, 1, (long)"KX-SYS done\n", length("KX-SYS done\n"), 0, 0, 0);
	sc(NR_exit_group, 0, 0, 0, 0, 0, 0);
}

__asm__(".globl _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	and $-16, %rsp\n"
	"	call kxsys_main\n"
	"	hlt\n");
