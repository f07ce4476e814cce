/*
 * kxtrace: QEMU callbacks and records (see kxtrace.h).
 *
 * Plugin API (include/qemu/qemu-plugin.h, QEMU 10.0, API version 4):
 * - the translation callback looks at each instruction's vaddr and
 *   registers an exec callback, with QEMU_PLUGIN_CB_R_REGS, only where it
 *   matches a trace point (the same filter as contrib/plugins/execlog.c);
 * - qemu_plugin_read_register() reads the registers whose handles
 *   qemu_plugin_get_registers() gave in the vCPU init callback;
 * - qemu_plugin_read_memory_vaddr() (API 4) reads guest memory through the
 *   vCPU's current page tables: at the C entry functions that is the
 *   kernel's CR3, which maps user space too (also under KPTI);
 * - new trace points take effect through qemu_plugin_reset(), called from a
 *   vCPU callback (idle/resume: a vCPU passes there whenever the VM stops
 *   and starts again), which flushes the translated code; its callback
 *   re-registers ours.
 *
 * Callbacks run on the vCPU threads concurrently (MTTCG): each vCPU owns
 * its ring and its scratch buffer; the sequence number is one atomic.
 * A full ring drops the record and counts it: the guest never waits.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kxtrace.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct kx_config kx_cfg;
qemu_plugin_id_t kx_id;
int kx_vcpus;
uint64_t kx_ring_size = (uint64_t)KX_DEFAULT_RING_KB * 1024;
int kx_ring_fd = -1;
size_t kx_ring_bytes;
uint64_t kx_seq;
int kx_armed, kx_want_armed, kx_reset_pending, kx_generation;

#define PAGE 4096u

/* The vCPU register table: the same handles on every vCPU. */
static GArray *reg_table;
static uint8_t *ring_base;
static GByteArray *scratch[KX_MAX_VCPUS];
/* Where each vCPU builds its record before it goes into the ring. */
static struct kx_record stage[KX_MAX_VCPUS];
static char *sock_path;

int kx_register_index(const char *name)
{
    if (!reg_table)
        return -1;
    for (guint i = 0; i < reg_table->len; i++) {
        qemu_plugin_reg_descriptor *d =
            &g_array_index(reg_table, qemu_plugin_reg_descriptor, i);
        if (strcmp(d->name, name) == 0)
            return (int)i;
    }
    return -1;
}

const char *kx_register_name(int index, uintptr_t *handle)
{
    if (!reg_table || index < 0 || (guint)index >= reg_table->len)
        return NULL;
    qemu_plugin_reg_descriptor *d = &g_array_index(reg_table, qemu_plugin_reg_descriptor, index);
    *handle = (uintptr_t)d->handle;
    return d->name;
}

struct kx_ring *kx_ring_of(int vcpu)
{
    size_t per = sizeof(struct kx_ring) + kx_ring_size;
    return (struct kx_ring *)(ring_base + 64 + per * vcpu);
}

/* Copy `len` bytes to the ring at byte count `head`, wrapping at its end. */
static void ring_put(struct kx_ring *r, uint64_t head, const void *src, size_t len)
{
    uint8_t *data = (uint8_t *)(r + 1);
    size_t at = head % kx_ring_size, first = kx_ring_size - at;
    if (first > len)
        first = len;
    memcpy(data + at, src, first);
    memcpy(data, (const uint8_t *)src + first, len - first);
}

static uint64_t read_reg(unsigned vcpu, int index)
{
    qemu_plugin_reg_descriptor *d =
        &g_array_index(reg_table, qemu_plugin_reg_descriptor, index);
    GByteArray *buf = scratch[vcpu];
    uint64_t v = 0;
    g_byte_array_set_size(buf, 0);
    int n = qemu_plugin_read_register(d->handle, buf);
    if (n > 0)
        memcpy(&v, buf->data, n < 8 ? n : 8);
    return v;
}

static bool read_mem(unsigned vcpu, uint64_t addr, void *out, size_t len)
{
    GByteArray *buf = scratch[vcpu];
    if (!qemu_plugin_read_memory_vaddr(addr, buf, len) || buf->len < len)
        return false;
    memcpy(out, buf->data, len);
    return true;
}

static uint64_t u64_at(const uint8_t *p, unsigned off)
{
    uint64_t v;
    memcpy(&v, p + off, 8);
    return v;
}

/* An argument's bytes, page by page so that an unmapped page after the
 * data keeps what came before it; a C string ends at its NUL. */
static uint8_t capture_one(unsigned vcpu, uint64_t addr, uint8_t *out,
                           size_t want, bool string, uint16_t *got)
{
    size_t have = 0;
    while (have < want) {
        size_t n = PAGE - ((addr + have) % PAGE);
        if (n > want - have)
            n = want - have;
        if (!read_mem(vcpu, addr + have, out + have, n)) {
            *got = have;
            return have ? KX_CAP_PARTIAL : KX_CAP_UNREADABLE;
        }
        if (string) {
            uint8_t *nul = memchr(out + have, 0, n);
            if (nul) {
                *got = (uint16_t)(nul - out + 1);
                return KX_CAP_OK;
            }
        }
        have += n;
    }
    *got = have;
    return string ? KX_CAP_TRUNCATED : KX_CAP_OK;
}

static uint64_t arg_value(const struct kx_abi *a, const struct kx_record *rec, int i)
{
    uint64_t v = u64_at(rec->ptregs_bytes, a->arg_off[i]);
    return a->bits == 32 ? (v & 0xffffffffu) : v;
}

/* The string and buffer arguments the capture table names for this call. */
static void capture_args(unsigned vcpu, const struct kx_abi *a, uint64_t nr,
                         struct kx_record *rec)
{
    if (nr >= KX_MAX_NR)
        return;
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        uint8_t kind = a->cap_kind[nr][i];
        if (kind == KX_CAP_NONE)
            continue;
        struct kx_cap_desc *d = &rec->caps[rec->ncap++];
        uint64_t addr = arg_value(a, rec, i);
        size_t want = a->cap_max[nr][i];
        if (kind == KX_CAP_BUFFER && a->cap_len_arg[nr][i] < 6) {
            uint64_t count = arg_value(a, rec, a->cap_len_arg[nr][i]);
            if (count < want)
                want = count;
        }
        d->arg = i;
        d->off = off;
        d->len = 0;
        if (want > sizeof(rec->data) - off) {
            d->status = KX_CAP_NO_ROOM;
        } else if (addr == 0 || want == 0) {
            d->status = addr ? KX_CAP_OK : KX_CAP_UNREADABLE;
        } else {
            d->status = capture_one(vcpu, addr, rec->data + off, want,
                                    kind == KX_CAP_STRING, &d->len);
        }
        off += d->len;
    }
    rec->used = (uint16_t)(offsetof(struct kx_record, data) + off);
}

static bool wanted(const struct kx_abi *a, uint64_t raw)
{
    if (a->want_all)
        return true;
    uint64_t nr = a->bits == 32 ? (raw & 0xffffffffu) : raw;
    if (nr < KX_MAX_NR)
        return a->wanted[nr / 8] & (1u << (nr % 8));
    return a->want_other;
}

static void read_task(unsigned vcpu, struct kx_record *rec)
{
    uint64_t cur = vcpu < KX_MAX_VCPUS ? kx_cfg.current[vcpu] : 0;
    if (!cur || !read_mem(vcpu, cur, &rec->task, 8)) {
        rec->flags |= KX_F_TASK;
        return;
    }
    size_t at = 0;
    for (int i = 0; i < kx_cfg.nslices; i++) {
        if (!read_mem(vcpu, rec->task + kx_cfg.slice_off[i], rec->task_bytes + at,
                      kx_cfg.slice_len[i]))
            rec->flags |= KX_F_TASK;
        at += kx_cfg.slice_len[i];
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* Registers and pt_regs of the call; false if the number is not wanted. */
static bool read_call(unsigned vcpu, const struct kx_point *p, struct kx_record *rec)
{
    rec->nregs = kx_cfg.nregs;
    for (int i = 0; i < kx_cfg.nregs; i++)
        rec->regs[i] = read_reg(vcpu, kx_cfg.reg_index[i]);
    rec->ptregs = rec->regs[p->reg];
    if (p->alt_reg >= 0 && rec->ptregs < p->alt_below)
        rec->ptregs = rec->regs[p->alt_reg];
    if (!read_mem(vcpu, rec->ptregs, rec->ptregs_bytes, kx_cfg.ptregs_size)) {
        rec->flags |= KX_F_PTREGS;
        return true;                 /* kx counts it undecodable */
    }
    rec->nr = u64_at(rec->ptregs_bytes, p->nr_off);
    return wanted(&kx_cfg.abis[p->abi], rec->nr);
}

static void on_point(unsigned int vcpu, void *udata)
{
    uintptr_t tag = (uintptr_t)udata;
    if (!__atomic_load_n(&kx_armed, __ATOMIC_ACQUIRE) || vcpu >= (unsigned)kx_vcpus ||
        (int)(tag >> 8) != __atomic_load_n(&kx_generation, __ATOMIC_RELAXED))
        return;
    const struct kx_point *p = &kx_cfg.points[tag & 0xff];
    struct kx_ring *ring = kx_ring_of(vcpu);
    struct kx_record *rec = &stage[vcpu];
    memset(rec, 0, offsetof(struct kx_record, data));
    rec->magic = KX_RECORD_MAGIC;
    rec->vcpu = vcpu;
    rec->kind = p->kind;
    rec->point = tag & 0xff;
    rec->used = offsetof(struct kx_record, data);
    if (!read_call(vcpu, p, rec)) {
        __atomic_fetch_add(&ring->filtered, 1, __ATOMIC_RELAXED);
        return;
    }
    read_task(vcpu, rec);
    if (p->caller_reg >= 0 && !read_mem(vcpu, rec->regs[p->caller_reg], &rec->caller, 8))
        rec->flags |= KX_F_CALLER;
    /* At a return too: out-parameters, and strings whose page the kernel
     * faulted in during the call. */
    if (!(rec->flags & KX_F_PTREGS))
        capture_args(vcpu, &kx_cfg.abis[p->abi], rec->nr, rec);
    uint64_t head = ring->head, len = KX_ALIGN(rec->used);
    if (head - __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE) + len > kx_ring_size) {
        __atomic_fetch_add(&ring->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    rec->seq = __atomic_fetch_add(&kx_seq, 1, __ATOMIC_RELAXED);
    rec->time_ns = now_ns();
    ring_put(ring, head, rec, len);
    __atomic_store_n(&ring->head, head + len, __ATOMIC_RELEASE);
    __atomic_store_n(&ring->records, ring->records + 1, __ATOMIC_RELEASE);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    int n = kx_cfg.npoints;
    size_t insns = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < insns; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        for (int k = 0; k < n; k++) {
            if (kx_cfg.points[k].addr == va) {
                uintptr_t tag = ((uintptr_t)kx_generation << 8) | (uintptr_t)k;
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_point, QEMU_PLUGIN_CB_R_REGS,
                                                       (void *)tag);
            }
        }
    }
}

static void register_callbacks(bool translate);

/* qemu_plugin_reset()'s callback: the code cache is flushed and every
 * callback unregistered; from now on translations see the new points.
 * Disarmed, not even the translation callback stays: a plugin that traces
 * nothing costs nothing. */
static void after_reset(qemu_plugin_id_t id)
{
    bool arm = __atomic_load_n(&kx_want_armed, __ATOMIC_ACQUIRE);
    register_callbacks(arm);
    __atomic_store_n(&kx_armed, arm, __ATOMIC_RELEASE);
}

static void on_idle_or_resume(qemu_plugin_id_t id, unsigned int vcpu)
{
    if (__atomic_exchange_n(&kx_reset_pending, 0, __ATOMIC_ACQ_REL))
        qemu_plugin_reset(kx_id, after_reset);
}

void kx_request_reset(bool arm)
{
    __atomic_store_n(&kx_armed, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&kx_want_armed, arm, __ATOMIC_RELEASE);
    __atomic_fetch_add(&kx_generation, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&kx_reset_pending, 1, __ATOMIC_RELEASE);
}

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    if (vcpu < KX_MAX_VCPUS && !scratch[vcpu])
        scratch[vcpu] = g_byte_array_sized_new(PAGE);
    if (!reg_table)
        reg_table = qemu_plugin_get_registers();
}

static void on_exit_qemu(qemu_plugin_id_t id, void *udata)
{
    unlink(sock_path);
}

static void register_callbacks(bool translate)
{
    qemu_plugin_register_atexit_cb(kx_id, on_exit_qemu, NULL);
    qemu_plugin_register_vcpu_init_cb(kx_id, on_vcpu_init);
    if (translate)
        qemu_plugin_register_vcpu_tb_trans_cb(kx_id, on_tb_trans);
    qemu_plugin_register_vcpu_idle_cb(kx_id, on_idle_or_resume);
    qemu_plugin_register_vcpu_resume_cb(kx_id, on_idle_or_resume);
}

static int make_rings(void)
{
    kx_ring_bytes = 64 + (size_t)kx_vcpus * (sizeof(struct kx_ring) + kx_ring_size);
    kx_ring_fd = memfd_create("kxtrace-rings", MFD_CLOEXEC);
    if (kx_ring_fd < 0 || ftruncate(kx_ring_fd, kx_ring_bytes) < 0)
        return -1;
    ring_base = mmap(NULL, kx_ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, kx_ring_fd, 0);
    if (ring_base == MAP_FAILED)
        return -1;
    /* The file's header: magic, vCPUs, ring KiB, record and ring header sizes. */
    uint32_t head[5] = {KX_RECORD_MAGIC, (uint32_t)kx_vcpus, (uint32_t)(kx_ring_size / 1024), KX_RECORD_MAX,
                        (uint32_t)sizeof(struct kx_ring)};
    memcpy(ring_base, head, sizeof(head));
    return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *sock = NULL;
    for (int i = 0; i < argc; i++) {
        if (g_str_has_prefix(argv[i], "sock="))
            sock = argv[i] + 5;
        else if (g_str_has_prefix(argv[i], "ring_kb="))
            kx_ring_size = strtoull(argv[i] + 8, NULL, 0) * 1024;
    }
    if (!info->system_emulation || !sock || kx_ring_size < 16 * 1024) {
        fprintf(stderr, "kxtrace: needs system emulation and sock=PATH (ring_kb >= 16)\n");
        return -1;
    }
    kx_id = id;
    sock_path = g_strdup(sock);
    kx_vcpus = info->system.max_vcpus;
    if (kx_vcpus > KX_MAX_VCPUS || make_rings() < 0 || kx_control_start(sock) < 0) {
        fprintf(stderr, "kxtrace: cannot set up (%d vCPUs, %lu KiB rings, socket %s)\n",
                kx_vcpus, (unsigned long)(kx_ring_size / 1024), sock);
        return -1;
    }
    register_callbacks(false);
    return 0;
}
