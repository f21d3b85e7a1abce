/* stream.h — the IO engine that reads routed experts from the model files (no Vulkan here).
 *
 * A qn_io reads byte ranges (file, offset, length) into memory the caller provides: mapped host-visible
 * staging memory, or on UMA the expert slot's own mapped memory. Reads are submitted in batches, each with
 * a user tag, and completed asynchronously; the caller polls or waits (with a timeout) for completions.
 *
 * Backends (docs/streaming.md has the details):
 *   direct    io_uring (queue depth configurable) on O_DIRECT file descriptors. Ranges that are not aligned
 *             to the filesystem's direct-IO alignment are widened to aligned bounds; only the partial
 *             head/tail blocks (or, if the destination is misaligned relative to the file offset, the whole
 *             range) go through aligned bounce buffers and are copied. With QN_IO_SLACK the destination
 *             may be arranged so that no copy is needed at all. If io_uring cannot be set up, a pread
 *             thread pool drives the O_DIRECT descriptors instead.
 *   buffered  a small pread thread pool on ordinary descriptors (page cache).
 *   auto      per engine, decided by the first file added: direct when O_DIRECT opens, an aligned read
 *             succeeds and a misaligned one is refused (the filesystem really bypasses the page cache;
 *             tmpfs accepts O_DIRECT without enforcing alignment, so it gets buffered), else buffered.
 * A fault-injection layer (delays, short reads, EAGAIN, EIO on the Nth read) can wrap either backend;
 * it is configured by qn_io_params.faults or, when that is NULL, by the env var QNEXT_IO_FAULTS.
 *
 * Short reads and EINTR/EAGAIN are continued/retried. EIO and reads past the end of the file (a file
 * truncated under us) complete the request with a negative status and a message naming the file and
 * the offset; the destination bytes of a failed request are unspecified (never reported as data).
 *
 * Threading: one thread at a time calls a qn_io (submit/wait/cancel from the same streaming thread);
 * the engine's own worker threads never call back into the caller. */
#ifndef QN_STREAM_H
#define QN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qn_io_mode { QN_IO_AUTO = 0, QN_IO_DIRECT = 1, QN_IO_BUFFERED = 2 };
enum qn_io_engine { QN_IO_ENGINE_AUTO = 0, QN_IO_ENGINE_URING = 1, QN_IO_ENGINE_POOL = 2 };

/* "direct" | "buffered" | "auto" (the --io option). Returns 0 or -EINVAL with a message. */
int qn_io_mode_parse(const char *s, enum qn_io_mode *out);
const char *qn_io_mode_name(enum qn_io_mode m);

/* Fault injection (tests). Spec string: comma-separated key=value, e.g. "delay_us=200,short=0.3,eio_at=5".
 *   delay_us=N   every read completes no earlier than N us after it was issued (plus jitter)
 *   jitter_us=N  plus a uniform random 0..N us (reorders completions)
 *   short=P      probability that a read is cut short (the backend is asked for fewer bytes)
 *   eagain=P     probability that a read completes with -EAGAIN (must be retried)
 *   eio_at=N     the N-th read issued to the backend (1-based, counting continuations) fails with EIO
 *   eio_every=N  every N-th read fails with EIO
 *   seed=N       PRNG seed (default 1) */
struct qn_io_faults {
    uint32_t delay_us, jitter_us;
    double short_p, eagain_p;
    uint64_t eio_at, eio_every;
    uint64_t seed;
};
int qn_io_faults_parse(const char *spec, struct qn_io_faults *out);
bool qn_io_faults_active(const struct qn_io_faults *f);

struct qn_io_params {
    enum qn_io_mode mode;         /* default QN_IO_AUTO */
    enum qn_io_engine engine;     /* default AUTO: io_uring for direct, the pool for buffered */
    int queue_depth;              /* backend reads in flight (io_uring SQ size); default 16 */
    int threads;                  /* pool worker threads; default qn_io_default_threads() */
    int urgent_reserve;           /* pool threads that only read QN_IO_URGENT requests (default 0) */
    uint32_t chunk_bytes;         /* a request is split into backend reads of at most this; default 1 MiB,
                                     rounded up to a multiple of 4096 */
    const struct qn_io_faults *faults; /* NULL: read QNEXT_IO_FAULTS from the environment */
    bool no_env_faults;           /* ignore QNEXT_IO_FAULTS */
};
void qn_io_default_params(struct qn_io_params *p);
/* The pool's default thread count: env QNEXT_IO_THREADS (1..256) if set, else the online CPUs clamped to
 * [4, 32] (buffered reads are page-cache copies, which scale with threads up to about the core count). */
int qn_io_default_threads(void);

typedef struct qn_io qn_io;

int qn_io_open(qn_io **out, const struct qn_io_params *p);
/* Cancels queued reads, waits for those in flight, frees everything and NULLs *io. */
void qn_io_close(qn_io **io);

/* Open `path` for reading; returns a file id >= 0 for qn_io_req.file, or a negative error.
 * The first file added resolves QN_IO_AUTO (and starts the backend). */
int qn_io_add_file(qn_io *io, const char *path);

enum { QN_IO_SLACK = 1u << 0,    /* the engine may write up to qn_io_align()-1 bytes before `dst`
                                     and after dst+length (destination inside a larger scratch area) */
       QN_IO_BOUNCE = 1u << 1,    /* direct reads never target `dst` itself: every byte goes through a
                                     bounce buffer and is copied (dst is memory the kernel cannot DMA into,
                                     e.g. a mapped PCIe BAR: O_DIRECT there fails in get_user_pages) */
       QN_IO_URGENT = 1u << 2 };  /* the request's reads go before every queued read that is not urgent
                                     (in the backlog and the pread pool's queue; io_uring keeps its order):
                                     demand misses ahead of prefetches */

struct qn_io_req {
    int file;              /* from qn_io_add_file */
    uint32_t flags;        /* QN_IO_SLACK or 0 */
    uint64_t offset, length;
    void *dst;             /* length bytes of caller memory, valid until the completion is returned */
    uint64_t tag;          /* returned in the completion */
};

struct qn_io_cqe {
    uint64_t tag;
    int status;            /* 0, or negative (-EIO, -ENODATA for end of file, -ECANCELED ...) */
    uint32_t reads;        /* backend reads this request took (chunks, continuations, retries) */
    uint64_t bytes;        /* bytes delivered (= length on success) */
    uint64_t ns;           /* submit -> completion */
    char msg[240];         /* on error: names the file, the offset and the reason */
};

/* Queue n requests. Validation (file id, range) happens before anything is queued: on a validation error
 * nothing is submitted. Returns 0 or a negative error; if the backend itself fails after queuing, the
 * affected requests still complete (with that error) through qn_io_wait. */
int qn_io_submit(qn_io *io, const struct qn_io_req *reqs, int n);
/* Collect completed requests into out[0..max). Blocks until at least min_complete are available, no
 * request is pending, or timeout_ns passes (<0: no timeout). Returns the number collected, or
 * -ETIMEDOUT if min_complete > 0 and none completed in time, or another negative error. */
int qn_io_wait(qn_io *io, struct qn_io_cqe *out, int max, int min_complete, int64_t timeout_ns);
/* Drop the requests not yet complete whose tag & mask == value: they complete with -ECANCELED; reads not yet
 * issued (or, in the pread pool, not yet started) are skipped, reads in progress finish but are not reported as
 * data. Returns how many requests were dropped. */
int qn_io_drop(qn_io *io, uint64_t mask, uint64_t value);
/* Requests submitted and not yet returned by qn_io_wait. */
int qn_io_pending(const qn_io *io);
/* Fail every queued (not yet issued) read with -ECANCELED and wait up to timeout_ns for reads in flight;
 * the affected requests still complete through qn_io_wait. Returns 0 or -ETIMEDOUT. */
int qn_io_cancel(qn_io *io, int64_t timeout_ns);

/* What was resolved: "io_uring" / "pool" (+ "+faults"), direct or not, and the alignment a destination
 * needs for zero-copy direct reads (1 for buffered). */
const char *qn_io_engine_name(const qn_io *io);
bool qn_io_is_direct(const qn_io *io, int file);
uint32_t qn_io_align(const qn_io *io, int file);
uint64_t qn_io_file_size(const qn_io *io, int file);   /* size when added */

struct qn_io_stats {
    uint64_t requests;       /* completed requests */
    uint64_t failed;         /* of which completed with an error */
    uint64_t reads;          /* backend reads issued (incl. continuations and retries) */
    uint64_t bytes;          /* requested bytes delivered by successful requests */
    uint64_t bytes_device;   /* bytes the backend transferred (widened direct ranges included) */
    uint64_t bytes_copied;   /* bytes copied out of bounce buffers */
    uint64_t short_reads, retries;
    uint64_t busy_ns;        /* wall time with at least one request pending */
    uint64_t lat_ns_sum, lat_ns_max; /* per request, submit -> completion */
};
void qn_io_get_stats(const qn_io *io, struct qn_io_stats *out);
void qn_io_reset_stats(qn_io *io);
double qn_io_stats_gbps(const struct qn_io_stats *s);   /* bytes / busy time, 1e9 bytes per second */

#endif
