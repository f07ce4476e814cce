/*
 * What the three lab workloads share (kxwork.c, kxwork32.c, arm64/kxwork.c):
 * their output, how they start children, and pid 1's job.  Each workload is
 * one translation unit, so the functions are static here.
 *
 * Knobs (`kxmode=spin`, `kxsleep_ms=N`...) are read with getenv().  The
 * kernel hands init the command line words it does not know: `a=b` words
 * before `--` in its environment, and every word after `--` in its argv
 * (init/main.c), so init folds argv's `a=b` words into its environment too,
 * and every child inherits them all.
 */
#ifndef KXGUEST_H
#define KXGUEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* One write(2) per line, so lines from several processes never interleave
 * on the serial console. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		write(1, buf, n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1);
}

static pid_t spawn(const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {(char *)path, NULL};
		execv(path, argv);
		_exit(127);
	}
	return pid;
}

static int run_and_wait(const char *path)
{
	int status = 0;
	pid_t pid = spawn(path);
	if (pid > 0)
		waitpid(pid, &status, 0);
	return status;
}

/* pid 1: the knobs of argv into the environment, /proc and /dev, then
 * /bin/kxwork, run again whenever it dies, and every orphan reaped. */
static __attribute__((noreturn)) void init_main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strchr(argv[i], '='))
			putenv(argv[i]);
	mkdir("/proc", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	say("KX-INIT pid=%d\n", getpid());
	for (;;) {
		pid_t work = spawn("/bin/kxwork");
		for (;;) {
			int status;
			pid_t pid = wait(&status);
			if (pid == work || (pid < 0 && errno == ECHILD))
				break;
		}
		say("KX-INIT workload exited, restarting\n");
		sleep(1);
	}
}

#endif
