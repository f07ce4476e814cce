/*
 * /init of the lab guest: a short boot step before the workload, then it
 * becomes /bin/kxwork through the link /sbin/init (still pid 1, so kxwork
 * takes its init role, and its comm stays "init").
 *
 *   - writes known records to /dev/kmsg: one at level 3 (err), which the
 *     console prints under the lab's loglevel=4, one at level 6 (info),
 *     which it does not, and one record of two lines;
 *   - loads the kernel module the lab put in /lib/modules/kx/ (one of the
 *     kernel package's own, chosen by scripts/kxlab/modules.py) and prints
 *     what the kernel says about it (/sys/module/NAME/sections, taint,
 *     /proc/modules) on the console as KX-MODULE lines;
 *   - with kxkmsg_ms=N on the kernel command line, leaves a child "kxkmsg"
 *     that writes an info record (not on the console) every N ms, for
 *     tests that need the log to grow between two stops.
 *
 * The tests read these lines from the serial console as ground truth.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MODULE_DIR "/lib/modules/kx"

static void kmsg(const char *text)
{
	int fd = open("/dev/kmsg", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror("kxboot: /dev/kmsg");
		close(fd);
	}
}

static void first_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");
	out[0] = 0;
	if (f) {
		if (!fgets(out, (int)size, f))
			out[0] = 0;
		fclose(f);
	}
	out[strcspn(out, "\n")] = 0;
}

static void report_module(const char *name)
{
	static const char *sections[] = {".text", ".data", ".bss", ".rodata"};
	char path[512], value[256], line[4096];
	printf("KX-MODULE %s", name);
	for (unsigned i = 0; i < sizeof(sections) / sizeof(*sections); i++) {
		snprintf(path, sizeof(path), "/sys/module/%s/sections/%s", name, sections[i]);
		first_line(path, value, sizeof(value));
		printf(" %s %s", sections[i], value[0] ? value : "-");
	}
	snprintf(path, sizeof(path), "/sys/module/%s/taint", name);
	first_line(path, value, sizeof(value));
	printf(" taint %s\n", value[0] ? value : "-");
	FILE *f = fopen("/proc/modules", "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ')
			printf("KX-PROCMODULES %s", line);
	if (f)
		fclose(f);
}

static void load_modules(void)
{
	DIR *dir = opendir(MODULE_DIR);
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		size_t n = strlen(e->d_name);
		if (n < 4 || strcmp(e->d_name + n - 3, ".ko") != 0)
			continue;
		char path[512], name[64];
		snprintf(path, sizeof(path), MODULE_DIR "/%s", e->d_name);
		snprintf(name, sizeof(name), "%.*s", (int)(n - 3 < 63 ? n - 3 : 63), e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		long rc = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
		printf("KX-MODLOAD %s %s\n", name, rc == 0 ? "ok" : "failed");
		if (fd >= 0)
			close(fd);
		if (rc == 0)
			report_module(name);
	}
	if (dir)
		closedir(dir);
}

static void kmsg_child(long every_ms)
{
	if (fork() != 0)
		return;
	prctl(PR_SET_NAME, "kxkmsg");
	struct timespec nap = {every_ms / 1000, (every_ms % 1000) * 1000000L};
	char text[64];
	for (unsigned long n = 1;; n++) {
		nanosleep(&nap, NULL);
		snprintf(text, sizeof(text), "<6>KX-KMSG tick %lu\n", n);
		kmsg(text);
	}
}

int main(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	kmsg("<3>KX-KMSG err: kxboot writes this record at level 3\n");
	kmsg("<6>KX-KMSG info: kxboot writes this record at level 6\n");
	kmsg("<3>KX-KMSG two lines: first\nKX-KMSG two lines: second\n");
	load_modules();
	fflush(stdout);
	umount("/sys");
	umount("/proc");
	const char *every = getenv("kxkmsg_ms");
	if (every && atol(every) > 0)
		kmsg_child(atol(every));
	char *argv[] = {"/init", NULL};
	execv("/sbin/init", argv);   /* a link to /bin/kxwork: comm stays "init" */
	perror("kxboot: exec /sbin/init");
	return 1;
}
