// SPDX-License-Identifier: GPL-2.0
//
// leakscope native allocation tracer: uprobes on the C allocator of one process.
//
// Built by ebpf/build.sh into ebpf/native_alloc.bpf.o, which the recorder embeds
// (recorder/src/native/loader.rs). The layouts of `struct event_hdr`, `struct alloc_info`
// and the counter indices are mirrored in recorder/src/native/event.rs; change both.
//
// Sampling: one in `sample_every` calls at random, weight `sample_every` (--native-sample);
// or, when `sample_bytes` (R) is set (--native-sample-bytes), an allocation of `size` bytes
// with probability min(1, max(size, 1) / R) (sample_by_bytes; weight 1 in the records: the
// recorder derives each event's weight from its size and R).
// Per traced allocation:
//   entry probe:  stash the requested size per thread (pid_tgid -> struct stash; with
//                 several allocator libraries unsampled calls too, so that calls nested in
//                 them are recognized)
//   return probe: insert address -> {size, time, stack hash, weight} into `allocs`
//                 (bounded), and send an alloc event with the user stack
//                 (a frame-pointer walk, no stack map so no collisions) over the ring buffer.
// free(p) and realloc(p, ...) entry: remove p from `allocs`; when it was there send a free
// event carrying the allocation's size, weight and stack hash. Frees of untraced blocks
// never leave the kernel.
// Every loss (ring buffer full, table full, stack failure, ...) is counted in `counters`.
//
// Records are sent without waking the reader, except for the one that makes the unread
// data cross `wakeup_bytes` (see send()): a wakeup per record costs an interrupt (a VM exit
// in a guest), several microseconds per allocation. The reader also polls on a timer.

#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define MAX_FRAMES 127

enum counter {
    C_ALLOC_CALLS = 0,     // allocation calls seen (sampled or not)
    C_ALLOC_SAMPLED = 1,   // allocation calls selected by sampling
    C_ALLOC_NULL = 2,      // sampled calls that returned no memory
    C_ALLOC_EVENTS = 3,    // alloc events sent
    C_FREE_CALLS = 4,      // free / realloc calls with a non-NULL pointer
    C_FREE_MATCHED = 5,    // of those, blocks found in the table
    C_DROP_ALLOC = 6,      // alloc events lost: ring buffer full (block not tracked)
    C_DROP_FREE = 7,       // free events lost: ring buffer full (block stays outstanding)
    C_TABLE_FULL = 8,      // allocations not tracked: outstanding table full
    C_STACK_FAIL = 9,      // stack walk failed (event sent with no stack; unused since the
                           // walk always has the leaf ip)
    C_STASH_FULL = 10,     // per-thread entry->return stash full (allocation lost)
    C_REPLACED = 11,       // allocation at an address still in the table (free missed)
    C_STACK_TRUNCATED = 12, // stack had MAX_FRAMES frames (may be cut)
    C_DROP_ALLOC_BYTES = 13, // bytes (weighted: est_bytes) of allocations lost to C_DROP_ALLOC/C_TABLE_FULL/C_STASH_FULL
    C_DROP_FREE_BYTES = 14,  // bytes (weighted: est_bytes) of frees lost to C_DROP_FREE
    C_NESTED = 15,          // allocator calls made inside another traced call (not counted twice)
    C_COUNT = 16,
};

enum event_kind {
    EV_ALLOC = 1,
    EV_FREE = 2,
};

struct event_hdr {
    __u32 kind;       // enum event_kind
    __u32 tid;        // thread id
    __u64 ts;         // bpf_ktime_get_ns() of the event
    __u64 addr;       // block address
    __u64 size;       // requested size in bytes
    __u64 stack_hash; // hash of the raw user stack (0 when there is none)
    __u64 alloc_ts;   // free: time of the allocation; alloc: same as ts
    __u32 weight;     // sample_every (allocations this one stands for when sampling by calls)
    __s32 nframes;    // alloc: frames in ips (or a negative error); free: 0
};

struct event {
    struct event_hdr h;
    __u64 ips[MAX_FRAMES];
};

struct alloc_info {
    __u64 size;
    __u64 ts;
    __u64 stack_hash;
    __u32 weight;
    __u32 tid;
};

struct stash {
    __u64 size;
    __u64 memptr; // posix_memalign: where the pointer is stored
    __u64 sp;     // stack pointer at entry: the return probe sees sp + 8
    __u64 ts;     // entry time, to recognize a stash left by a call that never returned
    __u64 sampled; // 0: the call was not sampled; stashed only to recognize nested calls
};

// Set by the loader before loading.
const volatile __u32 target_tgid = 0;
const volatile __u32 sample_every = 1;
const volatile __u64 sample_bytes = 0; // R of --native-sample-bytes; 0: sample by calls
const volatile __u64 wakeup_bytes = 1 << 20; // the loader sets ring size / 8

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1000000); // overridden by the loader (--native-max-outstanding)
    __type(key, __u64);
    __type(value, struct alloc_info);
} allocs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, struct stash);
} stashes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20); // overridden by the loader
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct event);
} scratch SEC(".maps");

// Set by the recorder: [0] = 1 once more than one allocator library is traced (a wrapper
// or preloaded allocator next to the C library), when calls can nest across libraries.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, C_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c)
        *c += n;
}

// Writes one record to the ring buffer; wakes the reader only when this record makes the
// unread data reach `wakeup_bytes` (a racing CPU may miss the crossing: the reader's poll
// timeout bounds the delay then).
static __always_inline long send(void *data, __u64 len)
{
    __u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
    __u64 flags = BPF_RB_NO_WAKEUP;
    if (avail < wakeup_bytes && avail + len >= wakeup_bytes)
        flags = BPF_RB_FORCE_WAKEUP;
    return bpf_ringbuf_output(&events, data, len, flags);
}

static __always_inline int ours(void)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return target_tgid == 0 || tgid == target_tgid;
}

// Byte sampling: true with probability min(1, max(size, 1) / R). The 64-bit random number
// modulo R is below s in exactly s of every R consecutive values, so the probability is
// s / R up to a modulo bias below R / 2^64; no product, so nothing overflows for any R.
// malloc(0) is sampled like a 1-byte block (it still counts as an allocation).
static __always_inline int sample_by_bytes(__u64 size)
{
    __u64 s = size ? size : 1;
    if (s >= sample_bytes)
        return 1;
    __u64 r = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
    return r % sample_bytes < s;
}

// Bytes a traced allocation of `size` stands for (an unbiased estimate): size x weight when
// sampling by calls; size / p = max(size, R) when sampling by bytes (0 for size 0).
static __always_inline __u64 est_bytes(__u64 size, __u32 weight)
{
    if (sample_bytes == 0)
        return size * weight;
    if (size >= sample_bytes || size == 0)
        return size;
    return sample_bytes;
}

static __always_inline int stash_size(struct pt_regs *ctx, __u64 size, __u64 memptr)
{
    if (!ours())
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    __u64 sp = PT_REGS_SP(ctx);
    __u64 now = bpf_ktime_get_ns();
    struct stash *outer = bpf_map_lookup_elem(&stashes, &id);
    if (outer && outer->sp > sp && now - outer->ts < 1000000000ULL) {
        // Called from inside a traced allocator call (glibc's realloc(NULL, n) calls
        // malloc): the outer call reports the block (when it was sampled; else nobody).
        count(C_NESTED, 1);
        return 0;
    }
    count(C_ALLOC_CALLS, 1);
    int sampled;
    if (sample_bytes > 0)
        sampled = sample_by_bytes(size);
    else
        sampled = sample_every <= 1 || bpf_get_prandom_u32() % sample_every == 0;
    if (sampled)
        count(C_ALLOC_SAMPLED, 1);
    // With several allocator libraries, unsampled calls are stashed too: a call nested in
    // one must not get a second chance to be sampled (the block would count about twice).
    // A single library skips that map update (0.6 us per call in sampled mode).
    if (!sampled) {
        __u32 zero = 0;
        __u32 *nesting = bpf_map_lookup_elem(&config, &zero);
        if (!nesting || *nesting == 0)
            return 0;
    }
    struct stash s = { .size = size, .memptr = memptr, .sp = sp, .ts = now, .sampled = sampled };
    if (bpf_map_update_elem(&stashes, &id, &s, BPF_ANY) != 0 && sampled) {
        count(C_STASH_FULL, 1);
        count(C_DROP_ALLOC_BYTES, est_bytes(size, sample_every));
    }
    return 0;
}

static __always_inline void untrack(__u64 addr)
{
    if (addr == 0)
        return;
    count(C_FREE_CALLS, 1);
    struct alloc_info *found = bpf_map_lookup_elem(&allocs, &addr);
    if (!found)
        return;
    struct alloc_info info = *found;
    // Only the caller whose delete succeeds reports the free (two racing frees of one
    // block report it once).
    if (bpf_map_delete_elem(&allocs, &addr) != 0)
        return;
    count(C_FREE_MATCHED, 1);
    struct event_hdr h = {
        .kind = EV_FREE,
        .tid = (__u32)bpf_get_current_pid_tgid(),
        .ts = bpf_ktime_get_ns(),
        .addr = addr,
        .size = info.size,
        .stack_hash = info.stack_hash,
        .alloc_ts = info.ts,
        .weight = info.weight,
        .nframes = 0,
    };
    if (send(&h, sizeof(h)) != 0) {
        count(C_DROP_FREE, 1);
        count(C_DROP_FREE_BYTES, est_bytes(info.size, info.weight));
    }
}

// Largest stack frame the walk accepts (and so the largest step between frame pointers).
#define MAX_FRAME_BYTES (8ULL << 20)

// The user stack by frame pointers, leaf first, into ips; returns its size in bytes (like
// bpf_get_stack). The kernel's walk (bpf_get_stack) follows every saved frame pointer until
// a read faults, and the first frame compiled without frame pointers (glibc's start_thread,
// __libc_start_call_main) leaves a garbage one: a page fault per stack, about 0.6 us. This
// walk stops instead at a frame pointer that is not above the previous frame, is not
// 8-byte aligned, or is more than MAX_FRAME_BYTES above it.
//
// One exception, for Go's cgo calls: runtime.asmcgocall runs C code on the thread's system
// (g0) stack, and the frame pointer the C code starts with (and the one a C function with
// frame pointers saves) is that of runtime.cgocall, on the goroutine's stack. Goroutine
// stacks live in the Go heap (0xc000000000 and up on amd64), below the thread stacks, so
// the walk may jump down to another stack once; the frames after the jump are checked as
// before. A garbage frame pointer left by code without frame pointers is mostly a small
// value (unreadable) or points up the same stack (refused), so this adds no fault in the
// common case.
static __always_inline long user_stack(struct pt_regs *ctx, __u64 *ips)
{
    __u64 fp = PT_REGS_FP(ctx);
    __u64 low = PT_REGS_SP(ctx);
    ips[0] = PT_REGS_IP(ctx);
    int n = 1;
    int switched = 0;
    for (int i = 1; i < MAX_FRAMES; i++) {
        if ((fp & 7) != 0 || fp == 0)
            break;
        if (fp < low && !switched) {
            switched = 1; // onto the goroutine stack (see above)
            low = fp;
        }
        if (fp < low || fp - low > MAX_FRAME_BYTES)
            break;
        __u64 frame[2]; // saved frame pointer, return address
        if (bpf_probe_read_user(frame, sizeof(frame), (void *)fp) != 0 || frame[1] == 0)
            break;
        ips[i] = frame[1];
        n = i + 1;
        low = fp + 16;
        fp = frame[0];
    }
    return (long)n * 8;
}

static __always_inline void track(struct pt_regs *ctx, __u64 addr, __u64 size)
{
    __u32 zero = 0;
    struct event *ev = bpf_map_lookup_elem(&scratch, &zero);
    if (!ev)
        return;
    __u64 now = bpf_ktime_get_ns();
    long n = user_stack(ctx, ev->ips);
    __u64 hash = 0;
    int nframes = 0;
    if (n < 0) {
        count(C_STACK_FAIL, 1);
        nframes = (int)n;
    } else {
        nframes = n / 8;
        if (nframes > MAX_FRAMES)
            nframes = MAX_FRAMES;
        if (nframes == MAX_FRAMES)
            count(C_STACK_TRUNCATED, 1);
        // FNV-1a style mix over the frames; 0 is reserved for "no stack".
        hash = 0xcbf29ce484222325ULL;
        for (int i = 0; i < MAX_FRAMES; i++) {
            if (i >= nframes)
                break;
            hash ^= ev->ips[i];
            hash *= 0x100000001b3ULL;
            hash ^= hash >> 29;
        }
        if (hash == 0)
            hash = 1;
    }
    struct alloc_info *old = bpf_map_lookup_elem(&allocs, &addr);
    if (old) {
        // The block was freed by a path we do not see: report the old block as freed.
        count(C_REPLACED, 1);
        untrack(addr);
    }
    struct alloc_info info = {
        .size = size,
        .ts = now,
        .stack_hash = hash,
        .weight = sample_every,
        .tid = (__u32)bpf_get_current_pid_tgid(),
    };
    if (bpf_map_update_elem(&allocs, &addr, &info, BPF_NOEXIST) != 0) {
        count(C_TABLE_FULL, 1);
        count(C_DROP_ALLOC_BYTES, est_bytes(size, sample_every));
        return;
    }
    ev->h.kind = EV_ALLOC;
    ev->h.tid = info.tid;
    ev->h.ts = now;
    ev->h.addr = addr;
    ev->h.size = size;
    ev->h.stack_hash = hash;
    ev->h.alloc_ts = now;
    ev->h.weight = sample_every;
    ev->h.nframes = nframes;
    __u64 len = sizeof(struct event_hdr);
    if (nframes > 0)
        len += ((__u64)nframes & 127) * 8;
    if (len > sizeof(struct event))
        len = sizeof(struct event);
    if (send(ev, len) != 0) {
        // User space never learns of this block: stop tracking it so its free is ignored too.
        bpf_map_delete_elem(&allocs, &addr);
        count(C_DROP_ALLOC, 1);
        count(C_DROP_ALLOC_BYTES, est_bytes(size, sample_every));
        return;
    }
    count(C_ALLOC_EVENTS, 1);
}

static __always_inline int finish(struct pt_regs *ctx, int posix)
{
    if (!ours())
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    struct stash *s = bpf_map_lookup_elem(&stashes, &id);
    if (!s)
        return 0; // a nested call, or the stash table was full
    struct stash st = *s;
    if (PT_REGS_SP(ctx) != st.sp + 8)
        return 0; // the return of a nested call; the stash belongs to the outer one
    bpf_map_delete_elem(&stashes, &id);
    if (!st.sampled)
        return 0;
    __u64 addr = 0;
    if (posix) {
        if (PT_REGS_RC(ctx) != 0 || st.memptr == 0) {
            count(C_ALLOC_NULL, 1);
            return 0;
        }
        if (bpf_probe_read_user(&addr, sizeof(addr), (void *)st.memptr) != 0)
            addr = 0;
    } else {
        addr = PT_REGS_RC(ctx);
    }
    if (addr == 0) {
        count(C_ALLOC_NULL, 1);
        return 0;
    }
    track(ctx, addr, st.size);
    return 0;
}

// malloc(size), valloc(size), pvalloc(size)
SEC("uprobe")
int BPF_KPROBE(size1_enter, __u64 size)
{
    return stash_size(ctx, size, 0);
}

// aligned_alloc(align, size), memalign(align, size)
SEC("uprobe")
int BPF_KPROBE(size2_enter, __u64 align, __u64 size)
{
    return stash_size(ctx, size, 0);
}

// calloc(nmemb, size)
SEC("uprobe")
int BPF_KPROBE(calloc_enter, __u64 nmemb, __u64 size)
{
    // Both factors below 2^32 cannot overflow; larger ones are rare enough to be taken
    // as given (the verifier has no 128-bit multiply for an exact check).
    __u64 total = nmemb * size;
    return stash_size(ctx, total, 0);
}

// realloc(ptr, size): a free of ptr now, plus an allocation when size > 0.
SEC("uprobe")
int BPF_KPROBE(realloc_enter, __u64 ptr, __u64 size)
{
    if (!ours())
        return 0;
    untrack(ptr);
    if (size == 0 && ptr != 0)
        return 0; // realloc(p, 0) frees p
    return stash_size(ctx, size, 0);
}

// posix_memalign(memptr, align, size)
SEC("uprobe")
int BPF_KPROBE(posix_memalign_enter, __u64 memptr, __u64 align, __u64 size)
{
    return stash_size(ctx, size, memptr);
}

// Return of malloc, calloc, realloc, aligned_alloc, memalign, valloc, pvalloc.
SEC("uretprobe")
int BPF_KRETPROBE(alloc_return)
{
    return finish(ctx, 0);
}

// Return of posix_memalign (0 on success; the pointer is in *memptr).
SEC("uretprobe")
int BPF_KRETPROBE(posix_memalign_return)
{
    return finish(ctx, 1);
}

// free(ptr)
SEC("uprobe")
int BPF_KPROBE(free_enter, __u64 ptr)
{
    if (!ours())
        return 0;
    untrack(ptr);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
