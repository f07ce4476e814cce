/*
 * kxtrace: a QEMU TCG plugin that records the guest kernel's system calls
 * for kx (`kx trace --engine plugin`) without a single debug stop.
 *
 * Shared declarations of kxtrace.c (the QEMU callbacks and the records) and
 * control.c (the control socket kx speaks to).  The record layout is
 * mirrored in gdbext/machine/plugin_client.py: change both together.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef KXTRACE_H
#define KXTRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <qemu-plugin.h>

#define KX_PROTOCOL 2
#define KX_MAX_VCPUS 64
#define KX_MAX_POINTS 16
#define KX_MAX_REGS 8
#define KX_MAX_ABIS 2
#define KX_MAX_NR 1024          /* capture table and wanted bitmap size */
#define KX_MAX_SLICES 8
#define KX_SLICE_BYTES 64
#define KX_PTREGS_BYTES 192
#define KX_MAX_CAPS 6
#define KX_RECORD_MAX 1024
#define KX_DEFAULT_RING_KB (128 * 1024)   /* a vCPU's ring: about 300k getpid records */
#define KX_RECORD_MAGIC 0x3152584bu /* "KXR1" */

enum { KX_ENTRY = 1, KX_RETURN = 2 };
enum { KX_CAP_NONE = 0, KX_CAP_STRING = 1, KX_CAP_BUFFER = 2 };
enum { KX_CAP_OK = 0, KX_CAP_TRUNCATED = 1, KX_CAP_UNREADABLE = 2,
       KX_CAP_PARTIAL = 3, KX_CAP_NO_ROOM = 4 };
enum { KX_F_TASK = 1, KX_F_PTREGS = 2, KX_F_CALLER = 4 };

/* One captured argument: `len` bytes at data[off] of the record. */
struct kx_cap_desc {
    uint8_t arg, status;
    uint16_t len, off, pad;
};

/* A record (little-endian, as the host): the first `used` bytes, rounded
 * up to 8, go into the ring. */
struct kx_record {
    uint32_t magic;
    uint16_t vcpu;
    uint8_t kind, point;
    uint64_t seq, time_ns, task, ptregs, nr, caller;
    uint32_t flags;
    uint16_t used;
    uint8_t ncap, nregs;
    uint64_t regs[KX_MAX_REGS];
    uint8_t task_bytes[KX_SLICE_BYTES];
    uint8_t ptregs_bytes[KX_PTREGS_BYTES];
    struct kx_cap_desc caps[KX_MAX_CAPS];
    uint8_t data[KX_RECORD_MAX - 432];
};
_Static_assert(sizeof(struct kx_record) == KX_RECORD_MAX, "record size");
#define KX_ALIGN(n) (((n) + 7u) & ~7u)

/* One vCPU's ring of bytes: a single producer (its vCPU thread), a single
 * consumer (kx).  head and tail count bytes (offset = count % ring size);
 * a record may wrap around the end.  `records` counts committed records. */
struct kx_ring {
    uint64_t head, tail, dropped, filtered, records;
    uint64_t pad[3];
};

/* A trace point: the first instruction of a C entry function, or the
 * instruction after an entry stub's call into C. */
struct kx_point {
    uint64_t addr;
    uint8_t kind, abi;
    int8_t reg, alt_reg;        /* pt_regs pointer: regs[reg], or regs[alt_reg] ... */
    uint64_t alt_below;         /* ... when regs[reg] < alt_below */
    uint16_t nr_off;            /* pt_regs member with the number */
    int8_t caller_reg;          /* read [regs[caller_reg]]: the return address */
};

struct kx_abi {
    uint8_t bits;
    uint16_t arg_off[6];
    bool want_all, want_other;
    uint8_t wanted[KX_MAX_NR / 8];
    uint8_t cap_kind[KX_MAX_NR][6];
    uint8_t cap_len_arg[KX_MAX_NR][6];
    uint16_t cap_max[KX_MAX_NR][6];
};

struct kx_config {
    int nregs;
    int reg_index[KX_MAX_REGS];   /* into the vCPU register table */
    char reg_name[KX_MAX_REGS][16];
    int npoints;
    struct kx_point points[KX_MAX_POINTS];
    uint32_t ptregs_size;
    struct kx_abi abis[KX_MAX_ABIS];
    int nslices;
    uint16_t slice_off[KX_MAX_SLICES], slice_len[KX_MAX_SLICES];
    uint64_t current[KX_MAX_VCPUS];
};

/* State shared by both files. */
extern struct kx_config kx_cfg;
extern qemu_plugin_id_t kx_id;
extern int kx_vcpus;
extern uint64_t kx_ring_size;
extern int kx_ring_fd;
extern size_t kx_ring_bytes;
extern uint64_t kx_seq;
extern int kx_armed, kx_want_armed, kx_reset_pending, kx_generation;

int kx_register_index(const char *name);
const char *kx_register_name(int index, uintptr_t *handle);
void kx_request_reset(bool arm);
struct kx_ring *kx_ring_of(int vcpu);
int kx_control_start(const char *path);

#endif
