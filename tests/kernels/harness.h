/* harness.h — the kernel-test harness: one device, random inputs, poisoned outputs, a C reference,
 * a tolerance, and a verdict that also fails on any Khronos validation message.
 *
 * A kernel test is a main() like this (see test_eltwise.c):
 *
 *     int main(int argc, char **argv)
 *     {
 *         struct qn_h h;
 *         qn_h_open(&h, "eltwise", argc, argv);                  // exits 77 (loudly) if no device/layer
 *         float *a_h, *b_h;
 *         qn_buf *a = qn_h_input_f32(&h, "a", n, -4, 4, &a_h);    // random, never zeros; host copy
 *         qn_buf *b = qn_h_input_f32(&h, "b", n, -4, 4, &b_h);
 *         qn_buf *y = qn_h_output(&h, "y", n);                    // poisoned with NaNs
 *         qn_pipe *p = qn_h_pipe(&h, QN_K_ELTWISE, 256, QN_EW_ADD); // kernel + spec constants
 *         qn_pc_eltwise pc = { .n = n };
 *         qn_h_run(&h, p, QN_BINDS(QN_BIND(a), QN_BIND(b), QN_BIND(y)), &pc, sizeof pc, (n + 255) / 256);
 *         float *ref = qn_h_alloc(&h, n);
 *         for (size_t i = 0; i < n; i++) ref[i] = a_h[i] + b_h[i];
 *         qn_h_check(&h, "add n=..", y, ref, n, 1e-6, 1e-6);      // prints max abs/rel error
 *         return qn_h_close(&h);                                  // 0 pass, 1 fail
 *     }
 *
 * Infrastructure errors (a Vulkan call failing, out of memory) print the qnext error message and exit 1;
 * kernel mismatches are counted and reported by qn_h_close. Everything the harness allocates (buffers,
 * host arrays) is freed by qn_h_close; qn_h_reset() frees it earlier (between cases of a loop). */
#ifndef QN_HARNESS_H
#define QN_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "qn_rng.h"
#include "vk.h"

#define QN_H_MAX_OBJS 256

struct qn_h {
    const char *name;
    qn_vk *v;
    qn_cmd *cmd;
    qn_rng rng;
    int checks, failures;
    int verbose;
    uint32_t nbufs, nhost;
    qn_buf *bufs[QN_H_MAX_OBJS];
    void *host[QN_H_MAX_OBJS];
};

/* Open the device (QNEXT_VALIDATION / QNEXT_NO_SUBGROUP / QNEXT_UMA from the environment, --device SEL
 * and -v from argv). Seed from QNEXT_TEST_SEED (default fixed). Exits 77 with a loud message when the
 * device or the validation layer is missing, 1 on other errors. */
void qn_h_open(struct qn_h *h, const char *name, int argc, char **argv);
/* Free everything, close the device, and give the exit status: 1 if any check failed or any validation
 * message was seen (including at teardown), else 0. */
int qn_h_close(struct qn_h *h);
/* Free the buffers and host arrays made so far (the device stays open). */
void qn_h_reset(struct qn_h *h);

/* Abort the test (exit 1) with the qnext error message if rc < 0. */
void qn_h_ok(struct qn_h *h, int rc, const char *what);

/* Host arrays owned by the harness. */
float *qn_h_alloc(struct qn_h *h, size_t n);
void *qn_h_alloc_bytes(struct qn_h *h, size_t bytes);
/* n uniform values in [lo, hi), none of them exactly zero. */
void qn_h_random(struct qn_h *h, float *x, size_t n, float lo, float hi);
/* x[0, n) as the int8 kernels see it (quant_i8.glsl): per 32 values dx = amax / 127 and xq = dx * rint(x * (127 /
 * amax)); xq may be x (in place); dx[n / 32] receives the scales unless NULL. */
void qn_h_quant_i8(const float *x, uint32_t n, float *xq, float *dx);

/* Device buffers with random contents (never zeros). *host (if not NULL) receives the values as the
 * kernel sees them, in f32 (after rounding to bf16/f16 for those dtypes). */
qn_buf *qn_h_input_f32(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host);
qn_buf *qn_h_input_bf16(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host);
qn_buf *qn_h_input_f16(struct qn_h *h, const char *name, size_t n, float lo, float hi, float **host);
/* Device buffer of given bytes with exactly these contents. */
qn_buf *qn_h_upload(struct qn_h *h, const char *name, const void *data, size_t bytes);
/* Output buffer of n f32, poisoned with a NaN pattern so elements the kernel does not write fail. */
qn_buf *qn_h_output(struct qn_h *h, const char *name, size_t n);
/* Any device buffer (bytes), poisoned too. */
qn_buf *qn_h_buffer(struct qn_h *h, const char *name, size_t bytes);
/* Read n f32 from a buffer into a harness-owned host array. */
float *qn_h_read(struct qn_h *h, const qn_buf *b, size_t n);

/* The pipeline for kernel k with the given specialization constants (ids 0, 1, ...; at most 8);
 * pass none to use the shader's defaults. */
#define qn_h_pipe(h, k, ...) qn_h_pipe_spec((h), (k), (const uint32_t[]){ __VA_ARGS__ }, \
    (uint32_t)(sizeof((const uint32_t[]){ __VA_ARGS__ }) / sizeof(uint32_t)))
#define qn_h_pipe_default(h, k) qn_h_pipe_spec((h), (k), NULL, 0)
qn_pipe *qn_h_pipe_spec(struct qn_h *h, enum qn_kernel k, const uint32_t *spec, uint32_t nspec);

/* Record one dispatch (groups spread over x/y), run it and wait. Returns the GPU time in ms (NaN when
 * the device has no timestamps). */
double qn_h_run(struct qn_h *h, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                uint32_t push_size, uint64_t groups);
/* Same with gz workgroups in z (qn_cmd_dispatch_nz). */
double qn_h_run_z(struct qn_h *h, const qn_pipe *p, const struct qn_bind *b, uint32_t nb, const void *push,
                  uint32_t push_size, uint64_t groups, uint32_t gz);

/* Compare got (read from `out`) with ref: element i passes if |got - ref| <= atol + rtol * |ref| and got
 * is finite. Prints one line "ok|FAIL what: max abs .. max rel .. (worst at i)". Returns 0 if it passed. */
int qn_h_check(struct qn_h *h, const char *what, const qn_buf *out, const float *ref, size_t n, double atol,
               double rtol);
/* Same on host arrays. */
int qn_h_check_host(struct qn_h *h, const char *what, const float *got, const float *ref, size_t n, double atol,
                    double rtol);

#endif
