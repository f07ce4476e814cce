/*
 * kxtrace: the control socket (a unix stream socket, one client at a time).
 *
 * kx sends lines and gets one answer line each ("ok ..." or "err ...").
 * `hello` also passes the rings' memfd (SCM_RIGHTS).  The configuration
 * (registers, trace points, pt_regs layout, wanted numbers, the capture
 * table, task_struct slices, each vCPU's `current` pointer) may change only
 * while disarmed; `start` arms it at the next vCPU idle/resume, `stop` and
 * a client that goes away disarm it.  Word by word in gdbext/machine/
 * plugin_client.py.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kxtrace.h"

static int listen_fd = -1;

static int say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int say(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof(buf) - 1)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    return send(fd, buf, n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* `hello`: the layout, and the rings' descriptor alongside. */
static int cmd_hello(int fd)
{
    char text[160];
    int n = snprintf(text, sizeof(text), "ok kxtrace %d vcpus=%d ring=%lu record=%d header=%zu bytes=%zu\n",
                     KX_PROTOCOL, kx_vcpus, (unsigned long)kx_ring_size, KX_RECORD_MAX,
                     sizeof(struct kx_ring), kx_ring_bytes);
    struct iovec iov = {text, (size_t)n};
    char ctl[CMSG_SPACE(sizeof(int))] = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = sizeof(ctl)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &kx_ring_fd, sizeof(int));
    return sendmsg(fd, &msg, MSG_NOSIGNAL) == n ? 0 : -1;
}

static int cmd_stats(int fd)
{
    uint64_t dropped = 0, filtered = 0, produced = 0;
    for (int i = 0; i < kx_vcpus; i++) {
        struct kx_ring *r = kx_ring_of(i);
        dropped += __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
        filtered += __atomic_load_n(&r->filtered, __ATOMIC_RELAXED);
        produced += __atomic_load_n(&r->records, __ATOMIC_RELAXED);
    }
    return say(fd, "ok seq=%lu records=%lu dropped=%lu filtered=%lu armed=%d pending=%d",
               (unsigned long)__atomic_load_n(&kx_seq, __ATOMIC_RELAXED), (unsigned long)produced,
               (unsigned long)dropped, (unsigned long)filtered,
               __atomic_load_n(&kx_armed, __ATOMIC_ACQUIRE),
               __atomic_load_n(&kx_reset_pending, __ATOMIC_ACQUIRE));
}

/* `regnames`: every register the vCPUs offer, with its handle (QEMU 10
 * makes it the gdb register number + 1: plugins/api.c). */
static int cmd_regnames(int fd)
{
    GString *out = g_string_new("ok");
    for (int i = 0;; i++) {
        uintptr_t handle;
        const char *name = kx_register_name(i, &handle);
        if (!name)
            break;
        g_string_append_printf(out, " %s=%lu", name, (unsigned long)handle);
    }
    g_string_append_c(out, '\n');
    int ok = send(fd, out->str, out->len, MSG_NOSIGNAL) == (ssize_t)out->len;
    g_string_free(out, TRUE);
    return ok ? 0 : -1;
}

static const char *cmd_regs(char **w, int n)
{
    if (n - 1 > KX_MAX_REGS)
        return "too many registers";
    for (int i = 1; i < n; i++) {
        int index = kx_register_index(w[i]);
        if (index < 0)
            return "unknown register";
        kx_cfg.reg_index[i - 1] = index;
        g_strlcpy(kx_cfg.reg_name[i - 1], w[i], sizeof(kx_cfg.reg_name[0]));
    }
    kx_cfg.nregs = n - 1;
    return NULL;
}

/* point ADDR KIND ABI REG ALTREG ALTBELOW NROFF CALLERREG */
static const char *cmd_point(char **w, int n)
{
    if (n != 9)
        return "point ADDR KIND ABI REG ALTREG ALTBELOW NROFF CALLERREG";
    if (kx_cfg.npoints >= KX_MAX_POINTS)
        return "too many points";
    struct kx_point p = {
        .addr = strtoull(w[1], NULL, 0), .kind = (uint8_t)atoi(w[2]), .abi = (uint8_t)atoi(w[3]),
        .reg = (int8_t)atoi(w[4]), .alt_reg = (int8_t)atoi(w[5]),
        .alt_below = strtoull(w[6], NULL, 0), .nr_off = (uint16_t)atoi(w[7]),
        .caller_reg = (int8_t)atoi(w[8])};
    if (p.abi >= KX_MAX_ABIS || p.reg < 0 || p.reg >= kx_cfg.nregs || p.alt_reg >= kx_cfg.nregs ||
        p.caller_reg >= kx_cfg.nregs || p.nr_off + 8 > KX_PTREGS_BYTES ||
        (p.kind != KX_ENTRY && p.kind != KX_RETURN))
        return "bad point";
    kx_cfg.points[kx_cfg.npoints++] = p;
    return NULL;
}

/* abi IDX BITS OFF1..OFF6 */
static const char *cmd_abi(char **w, int n)
{
    int i = n > 1 ? atoi(w[1]) : -1;
    if (n != 9 || i < 0 || i >= KX_MAX_ABIS)
        return "abi IDX BITS OFF1 .. OFF6";
    kx_cfg.abis[i].bits = (uint8_t)atoi(w[2]);
    for (int k = 0; k < 6; k++) {
        kx_cfg.abis[i].arg_off[k] = (uint16_t)atoi(w[3 + k]);
        if (kx_cfg.abis[i].arg_off[k] + 8 > KX_PTREGS_BYTES)
            return "argument offset past pt_regs";
    }
    return NULL;
}

/* want IDX all|other|NR... */
static const char *cmd_want(char **w, int n)
{
    int i = n > 1 ? atoi(w[1]) : -1;
    if (i < 0 || i >= KX_MAX_ABIS)
        return "want IDX all|other|NR ...";
    struct kx_abi *a = &kx_cfg.abis[i];
    for (int k = 2; k < n; k++) {
        if (strcmp(w[k], "all") == 0) {
            a->want_all = true;
        } else if (strcmp(w[k], "other") == 0) {
            a->want_other = true;
        } else {
            unsigned long nr = strtoul(w[k], NULL, 0);
            if (nr >= KX_MAX_NR)
                return "nr too large (use other)";
            a->wanted[nr / 8] |= 1u << (nr % 8);
        }
    }
    return NULL;
}

/* cap IDX NR ARG KIND MAX LENARG */
static const char *cmd_cap(char **w, int n)
{
    if (n != 7)
        return "cap IDX NR ARG KIND MAX LENARG";
    int i = atoi(w[1]), arg = atoi(w[3]);
    unsigned long nr = strtoul(w[2], NULL, 0);
    if (i < 0 || i >= KX_MAX_ABIS || nr >= KX_MAX_NR || arg < 0 || arg >= 6)
        return "bad cap";
    kx_cfg.abis[i].cap_kind[nr][arg] = (uint8_t)atoi(w[4]);
    kx_cfg.abis[i].cap_max[nr][arg] = (uint16_t)atoi(w[5]);
    kx_cfg.abis[i].cap_len_arg[nr][arg] = (uint8_t)atoi(w[6]);
    return NULL;
}

static const char *cmd_task(char **w, int n)
{
    int total = 0;
    for (int i = 0; i < kx_cfg.nslices; i++)
        total += kx_cfg.slice_len[i];
    if (n != 3 || kx_cfg.nslices >= KX_MAX_SLICES)
        return "task OFF LEN (at most 8)";
    int len = atoi(w[2]);
    if (len <= 0 || total + len > KX_SLICE_BYTES)
        return "task slices exceed 64 bytes";
    kx_cfg.slice_off[kx_cfg.nslices] = (uint16_t)atoi(w[1]);
    kx_cfg.slice_len[kx_cfg.nslices++] = (uint16_t)len;
    return NULL;
}

static const char *configure(char **w, int n)
{
    if (__atomic_load_n(&kx_want_armed, __ATOMIC_ACQUIRE))
        return "armed: stop first";
    if (strcmp(w[0], "clear") == 0) {
        memset(&kx_cfg, 0, sizeof(kx_cfg));
        return NULL;
    }
    if (strcmp(w[0], "regs") == 0)
        return cmd_regs(w, n);
    if (strcmp(w[0], "point") == 0)
        return cmd_point(w, n);
    if (strcmp(w[0], "abi") == 0)
        return cmd_abi(w, n);
    if (strcmp(w[0], "want") == 0)
        return cmd_want(w, n);
    if (strcmp(w[0], "cap") == 0)
        return cmd_cap(w, n);
    if (strcmp(w[0], "task") == 0)
        return cmd_task(w, n);
    if (strcmp(w[0], "ptregs") == 0 && n == 2) {
        kx_cfg.ptregs_size = (uint32_t)atoi(w[1]);
        return kx_cfg.ptregs_size > KX_PTREGS_BYTES ? "pt_regs too large" : NULL;
    }
    if (strcmp(w[0], "current") == 0 && n == 3) {
        int v = atoi(w[1]);
        if (v < 0 || v >= KX_MAX_VCPUS)
            return "bad vCPU";
        kx_cfg.current[v] = strtoull(w[2], NULL, 0);
        return NULL;
    }
    return "unknown command";
}

static int handle(int fd, char *line)
{
    char *w[64];
    int n = 0;
    for (char *s = strtok(line, " \t\r"); s && n < 64; s = strtok(NULL, " \t\r"))
        w[n++] = s;
    if (n == 0)
        return 0;
    if (strcmp(w[0], "hello") == 0)
        return cmd_hello(fd);
    if (strcmp(w[0], "stats") == 0)
        return cmd_stats(fd);
    if (strcmp(w[0], "regnames") == 0)
        return cmd_regnames(fd);
    if (strcmp(w[0], "start") == 0 || strcmp(w[0], "stop") == 0) {
        bool arm = w[0][2] == 'a';
        if (arm && (kx_cfg.npoints == 0 || kx_cfg.ptregs_size == 0))
            return say(fd, "err nothing to trace");
        kx_request_reset(arm);
        return say(fd, "ok");
    }
    const char *err = configure(w, n);
    return err ? say(fd, "err %s", err) : say(fd, "ok");
}

static void serve(int fd)
{
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t got = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (got <= 0)
            return;
        have += got;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', buf + have - start))) {
            *nl = 0;
            if (handle(fd, start) < 0)
                return;
            start = nl + 1;
        }
        have -= start - buf;
        memmove(buf, start, have);
        if (have == sizeof(buf) - 1)
            return;                     /* a line longer than the buffer */
    }
}

static void *control_thread(void *arg)
{
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        serve(fd);
        close(fd);
        /* kx went away: nothing stays armed behind its back. */
        if (__atomic_load_n(&kx_want_armed, __ATOMIC_ACQUIRE))
            kx_request_reset(false);
    }
    return arg;
}

int kx_control_start(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    unlink(path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listen_fd, 1) < 0)
        return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, control_thread, NULL) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}
