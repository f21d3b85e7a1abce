/* test_timeline.c — timeline semaphores and the transfer queue (runtime/cmd.c, vk.h), as the streaming pipeline
 * uses them: a chain of ROUNDS rounds where a transfer-queue copy (host-visible random bytes -> device buffer)
 * signals tx = r and a compute-queue submission waits for tx >= r on the GPU, copies the device buffer to a
 * readback buffer and signals tc = r; the host waits for tc only at the end of each round's pair, never with a
 * fence, and every round's bytes must arrive intact (a missing wait would read stale bytes: each round writes
 * new random data to a different offset). Also: a wait for a value never signalled times out with -ETIMEDOUT
 * naming the timeline; counter values read back; dispatches are refused on a transfer-only queue; which queue the
 * copies use is printed (lavapipe has one queue family: the compute queue); a QN_MEM_DEVICE_MAPPED buffer (the
 * pools of QNEXT_STREAM_BAR=1) is mapped or refused with QN_E_UNSUPPORTED; a timeline destroyed right after a
 * submission that signals it waits for that signal first. Runs under validation (lvp_env): any
 * validation message fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_log.h"
#include "qn_rng.h"
#include "tests/testutil.h"
#include "vk.h"

#define ROUNDS 24
#define CHUNK 65536u

int main(void)
{
    qn_test_crash_report();
    qn_log_set(NULL, NULL, QN_LOG_WARN);
    qn_vk *v;
    int rc = qn_vk_open(&v, NULL);
    if (rc == QN_E_SKIP || rc == QN_E_NODEV) {
        fprintf(stderr, "\n*** SKIP test_timeline: %s ***\n\n", qn_errmsg());
        return 77;
    }
    if (rc) DIE("opening the Vulkan device");
    printf("device '%s': copies on %s\n", qn_vk_caps(v)->name,
           qn_vk_transfer_queue(v) ? "a transfer-only queue family" : "the compute queue (no transfer-only family)");
    qn_buf *up, *dev, *rb;
    if (qn_buf_create(v, QN_MEM_UPLOAD, (uint64_t)ROUNDS * CHUNK, "upload", &up) ||
        qn_buf_create(v, QN_MEM_DEVICE, (uint64_t)ROUNDS * CHUNK, "device", &dev) ||
        qn_buf_create(v, QN_MEM_READBACK, (uint64_t)ROUNDS * CHUNK, "readback", &rb))
        DIE("buffers");
    qn_timeline *tc, *tx;
    if (qn_timeline_create(v, "test compute", &tc) || qn_timeline_create(v, "test copies", &tx)) DIE("timelines");
    uint64_t val = 99;
    CHECK(!qn_timeline_value(tc, &val) && val == 0, "a new timeline reads %llu, expected 0", (unsigned long long)val);
    rc = qn_timeline_wait(tc, 1, 2000000);
    CHECK(rc == -ETIMEDOUT && strstr(qn_errmsg(), "test compute"), "wait for a value never signalled: rc %d: %s", rc,
          qn_errmsg());

    qn_cmd *xc[ROUNDS], *cc[ROUNDS];
    qn_rng rng;
    qn_rng_seed(&rng, 5);
    unsigned char *want = xmalloc((size_t)ROUNDS * CHUNK);
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t off = (uint64_t)r * CHUNK;
        for (uint32_t i = 0; i < CHUNK; i++) want[off + i] = (unsigned char)qn_rng_u64(&rng);
        memcpy((unsigned char *)up->map + off, want + off, CHUNK);
        if (qn_cmd_create_on(v, QN_QUEUE_TRANSFER, &xc[r]) || qn_cmd_create(v, &cc[r])) DIE("command buffers");
        if (qn_cmd_begin(xc[r]) || qn_cmd_copy(xc[r], up, off, dev, off, CHUNK)) DIE("recording a copy");
        qn_cmd_barrier(xc[r]);
        if (qn_cmd_end(xc[r])) DIE("ending the copy");
        if (qn_cmd_begin(cc[r]) || qn_cmd_copy(cc[r], dev, off, rb, off, CHUNK)) DIE("recording the read");
        qn_cmd_barrier(cc[r]);
        if (qn_cmd_end(cc[r])) DIE("ending the read");
        /* the copy waits for the previous round's compute value (a write after its read), signals tx = r + 1 */
        struct qn_tl_point wc = { tc, (uint64_t)r }, sx = { tx, (uint64_t)r + 1 };
        struct qn_tl_point wx = { tx, (uint64_t)r + 1 }, sc = { tc, (uint64_t)r + 1 };
        if (qn_cmd_submit_tl(xc[r], &wc, r ? 1 : 0, &sx)) DIE("submitting copy %d", r);
        if (qn_cmd_submit_tl(cc[r], &wx, 1, &sc)) DIE("submitting read %d", r);
    }
    rc = qn_timeline_wait(tc, ROUNDS, 10ll * 1000000000ll);
    CHECK(!rc, "waiting for the last round: %s", qn_errmsg());
    CHECK(!qn_timeline_value(tx, &val) && val == ROUNDS, "copy timeline at %llu, expected %d", (unsigned long long)val,
          ROUNDS);
    int bad = 0;
    for (int r = 0; r < ROUNDS; r++)
        bad += memcmp((unsigned char *)rb->map + (uint64_t)r * CHUNK, want + (uint64_t)r * CHUNK, CHUNK) != 0;
    CHECK(!bad, "%d of %d rounds read back other bytes than were copied", bad, ROUNDS);
    printf("%d rounds of copy (transfer) -> read (compute) chained by timeline values: %s\n", ROUNDS,
           bad ? "MISMATCH" : "every byte arrived");

    if (qn_vk_transfer_queue(v)) {   /* a transfer-only queue runs no dispatches */
        qn_pipe *p;
        if (qn_pipe_get(v, QN_K_COPY, NULL, 0, &p)) DIE("copy pipeline");
        if (qn_cmd_begin(xc[0])) DIE("re-recording");
        qn_pc_copy pc = { .n = 16 };
        rc = qn_cmd_dispatch_n(xc[0], p, QN_BINDS(QN_BIND(dev), QN_BIND(rb)), &pc, sizeof pc, 1);
        CHECK(rc == -EINVAL && strstr(qn_errmsg(), "transfer"), "dispatch on the transfer queue: rc %d", rc);
        qn_cmd_end(xc[0]);
    }
    /* a timeline destroyed right after a submission that signals it (no wait in between): the destroy waits for
     * the signal (a destroy of a semaphore in use is a validation error; lavapipe's queue thread was still
     * broadcasting on it after the batch's fence: a use after free under ThreadSanitizer) */
    for (int r = 0; r < 8; r++) {
        qn_timeline *td;
        if (qn_timeline_create(v, "destroyed early", &td)) DIE("timeline");
        if (qn_cmd_begin(cc[r]) || qn_cmd_copy(cc[r], up, 0, rb, 0, 4 * CHUNK)) DIE("recording a copy");
        if (qn_cmd_end(cc[r])) DIE("ending it");
        if (qn_cmd_submit_tl(cc[r], NULL, 0, &(struct qn_tl_point){ td, 7 })) DIE("submitting it");
        qn_timeline_destroy(&td);
        if (qn_cmd_wait(cc[r])) DIE("waiting for it");
    }
    printf("8 timelines destroyed right after the submissions that signal them\n");
    qn_buf *bar = NULL;
    rc = qn_buf_create(v, QN_MEM_DEVICE_MAPPED, CHUNK, "device-local mapped", &bar);
    CHECK((!rc && bar && bar->map) || rc == QN_E_UNSUPPORTED, "QN_MEM_DEVICE_MAPPED: rc %d, map %p: %s", rc,
          bar ? bar->map : NULL, qn_errmsg());
    printf("device-local host-visible memory: %s\n", rc ? "none (QNEXT_STREAM_BAR falls back)" : "mapped");
    qn_buf_destroy(v, &bar);
    for (int r = 0; r < ROUNDS; r++) {
        qn_cmd_destroy(&xc[r]);
        qn_cmd_destroy(&cc[r]);
    }
    qn_timeline_destroy(&tc);
    qn_timeline_destroy(&tx);
    qn_buf_destroy(v, &up);
    qn_buf_destroy(v, &dev);
    qn_buf_destroy(v, &rb);
    free(want);
    qn_vk_close(&v);
    uint32_t vm = qn_vk_validation_count();
    CHECK(!vm, "%u validation message(s)", vm);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
