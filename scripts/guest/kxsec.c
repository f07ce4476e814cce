/*
 * Ground truth for kx's seccomp and credentials views: one static binary
 * with two roles, started by /bin/kxwork once per round after its fixed
 * sequence (it is a child: kxwork's own syscalls stay those of KX-SEQ).
 *
 *   /bin/kxseccomp  installs two seccomp filters (hand-written classic BPF,
 *                   the same bytes as tests/unit/test_decoders_seccomp.py),
 *                   makes the filtered calls, prints KX-SECCOMP with what
 *                   they returned and the verdicts kx must compute, then
 *                   calls getppid(KX_STOP_MARK) for a test to stop at.
 *   /bin/kxcreds    sets known ids, groups and capability sets, reads them
 *                   back from the kernel, prints KX-CREDS, then calls
 *                   getpgid(KX_STOP_MARK) for a test to stop at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KX_STOP_MARK 0x5ecc

/* The pid without getpid(): tests take a getpid to be kxwork's (KX-SEQ).
 * A single-threaded process's tid is its pid. */
static int own_pid(void)
{
	return (int)syscall(SYS_gettid);
}

static long raw_syscall3(long nr, long a1, long a2, long a3)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
			 : "rcx", "r11", "memory");
	return ret;
}

static void say(const char *text)
{
	write(1, text, strlen(text));
}

#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARCH BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
#define LD_ARG0 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))

static int install(struct sock_filter *insns, unsigned short len)
{
	struct sock_fprog prog = {.len = len, .filter = insns};
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int seccomp_main(void)
{
	/* Older: only x86-64; getppid -> ERRNO(EPERM); uname -> KILL_PROCESS. */
	struct sock_filter older[] = {
		LD_ARCH,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 5),
		LD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_uname, 3, 0),
		RET(SECCOMP_RET_ALLOW),
		RET(SECCOMP_RET_ERRNO | EPERM),
		RET(SECCOMP_RET_KILL_PROCESS),
		RET(SECCOMP_RET_KILL_PROCESS),
	};
	/* Newer: getppid -> ERRNO(EACCES) (a tie the newest wins); getuid ->
	 * LOG; write(99, ...) -> ERRNO(EOPNOTSUPP). */
	struct sock_filter newer[] = {
		LD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getuid, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 0, 5),
		LD_ARG0,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 99, 2, 3),
		RET(SECCOMP_RET_ERRNO | EACCES),
		RET(SECCOMP_RET_LOG),
		RET(SECCOMP_RET_ERRNO | EOPNOTSUPP),
		RET(SECCOMP_RET_ALLOW),
	};
	char line[512];
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    install(older, sizeof(older) / sizeof(older[0])) ||
	    install(newer, sizeof(newer) / sizeof(newer[0]))) {
		say("KX-SECCOMP error: cannot install the filters\n");
		return 1;
	}
	long ppid = raw_syscall3(__NR_getppid, 0, 0, 0);
	long w99 = raw_syscall3(__NR_write, 99, (long)"x", 1);
	long uid = raw_syscall3(__NR_getuid, 0, 0, 0);
	snprintf(line, sizeof(line),
		 "KX-SECCOMP pid=%d filters=2 getppid=%ld write99=%ld getuid=%ld "
		 "expect getppid=ERRNO(%d) write99=ERRNO(%d) write1=ALLOW getuid=LOG "
		 "uname=KILL_PROCESS getpid=ALLOW i386=KILL_PROCESS\n",
		 own_pid(), ppid, w99, uid, EACCES, EOPNOTSUPP);
	say(line);
	raw_syscall3(__NR_getppid, KX_STOP_MARK, 0, 0);
	return 0;
}

/* The capability sets as 64-bit masks, read back with capget. */
static void caps(unsigned long long out[3])
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	syscall(SYS_capget, &h, d);
	out[0] = d[0].effective | (unsigned long long)d[1].effective << 32;
	out[1] = d[0].permitted | (unsigned long long)d[1].permitted << 32;
	out[2] = d[0].inheritable | (unsigned long long)d[1].inheritable << 32;
}

static unsigned long long cap_set_of(int option, int ask)
{
	unsigned long long mask = 0;
	for (int c = 0; c < 64; c++) {
		int r = ask ? prctl(option, ask, c, 0, 0) : prctl(option, c, 0, 0, 0);
		if (r < 0)
			break;
		if (r == 1)
			mask |= 1ULL << c;
	}
	return mask;
}

static int set_creds(void)
{
	gid_t groups[] = {10, 20, 30};
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	unsigned int eff = 1u << CAP_KILL | 1u << CAP_NET_RAW;
	memset(d, 0, sizeof(d));
	d[0].effective = eff;
	d[0].permitted = eff | 1u << CAP_CHOWN;
	d[0].inheritable = 1u << CAP_CHOWN;
	/* As root: the groups, the bounding set; keep the permitted set
	 * across the uid change, then narrow it and raise an ambient cap. */
	if (setgroups(3, groups) || prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE, 0, 0, 0) ||
	    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || setresgid(2001, 2002, 2003) ||
	    setresuid(1001, 1002, 1003))
		return -1;
	setfsuid(1003);   /* the saved ids: allowed without CAP_SETUID */
	setfsgid(2003);
	return syscall(SYS_capset, &h, d) ||
	       prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0);
}

static int creds_main(void)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	unsigned long long c[3];
	char line[512];
	if (set_creds()) {
		say("KX-CREDS error: cannot set the credentials\n");
		return 1;
	}
	getresuid(&r, &e, &s);
	getresgid(&rg, &eg, &sg);
	int fsuid = setfsuid(-1), fsgid = setfsgid(-1);   /* -1 fails and returns the current one */
	caps(c);
	snprintf(line, sizeof(line),
		 "KX-CREDS pid=%d uid=%u euid=%u suid=%u fsuid=%d gid=%u egid=%u sgid=%u fsgid=%d "
		 "groups=%d cap_eff=0x%llx cap_prm=0x%llx cap_inh=0x%llx cap_bnd=0x%llx cap_amb=0x%llx\n",
		 own_pid(), r, e, s, fsuid, rg, eg, sg, fsgid, getgroups(0, NULL), c[0], c[1], c[2],
		 cap_set_of(PR_CAPBSET_READ, 0), cap_set_of(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET));
	say(line);
	raw_syscall3(__NR_getpgid, KX_STOP_MARK, 0, 0);
	return 0;
}

int main(int argc, char **argv)
{
	(void)argc;
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	if (strcmp(name, "kxcreds") == 0)
		return creds_main();
	return seccomp_main();
}
