/* attn_cm_check.c — a self-check of the tensor-core prefill attention (attn_prefill_cm.comp) at pipeline setup:
 * forward_pipes.c uses it (env QNEXT_ATTN_CM) only if this passes, so a driver that lists the cooperative-matrix
 * shape but computes something else falls back to attn_prefill instead of producing wrong tokens.
 *
 * The case: the model's head shape (Hq, Hkv, D), 70 query tokens continuing a cache of 5 (three 64-row blocks per kv
 * head for G 8, three 32-key tiles, a partial one), random q, k, v in [-1, 1) and gates in [-4, 4); both kernels run
 * on the same buffers and the tensor-core result must match attn_prefill's within the f16 rounding of q, k, v and
 * the probabilities: |cm - fma| <= 3e-3 (test_attn_cm measures ~1e-3 worst against exact inputs at |q| < 2). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "forward.h"
#include "qn_err.h"
#include "qn_rng.h"

enum { AC_T = 70, AC_POS0 = 5, AC_CAP = 80 };

struct ac_case {
    uint32_t Hq, Hkv, D, st;
    size_t nq, nkv, nproj;
};

static void fill(qn_rng *rng, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = qn_rng_range(rng, lo, hi);
}

/* the two kernels on the same inputs; outputs into got[0] (tensor cores) and got[1] (attn_prefill) */
static int ac_run(qn_vk *v, const qn_pipe *cm, const qn_pipe *fma, const struct ac_case *k, const float *q,
                  const float *kv, const float *proj, float *got[2])
{
    qn_buf *b[7] = { 0 }; /* q, kcache, vcache, proj, pos, out cm, out fma */
    qn_cmd *c = NULL;
    const uint64_t sz[7] = { k->nq * 4, k->nkv * 4, k->nkv * 4, k->nproj * 4, 16, k->nq * 4, k->nq * 4 };
    uint32_t pos = 0, G = k->Hq / k->Hkv;
    qn_pc_attn_prefill pc = { .T = AC_T, .Hq = k->Hq, .Hkv = k->Hkv, .D = k->D, .cap = AC_CAP, .pos0 = AC_POS0,
                              .proj_stride = k->st, .gate_off = k->Hq * k->D, .scale = 1.0f / sqrtf((float)k->D) };
    int rc = 0;
    for (int i = 0; !rc && i < 7; i++) rc = qn_buf_create(v, QN_MEM_DEVICE, sz[i], "attn cm check", &b[i]);
    if (!rc) rc = qn_buf_write(v, b[0], 0, q, sz[0]);
    if (!rc) rc = qn_buf_write(v, b[1], 0, kv, sz[1]);
    if (!rc) rc = qn_buf_write(v, b[2], 0, kv + k->nkv, sz[2]);
    if (!rc) rc = qn_buf_write(v, b[3], 0, proj, sz[3]);
    if (!rc) rc = qn_buf_write(v, b[4], 0, &pos, sizeof pos);
    for (int i = 5; !rc && i < 7; i++) rc = qn_buf_fill(v, b[i], 0, sz[i], 0x7fc00000u); /* NaN where unwritten */
    if (!rc) rc = qn_cmd_create(v, &c);
    if (!rc) rc = qn_cmd_begin(c);
    for (int i = 0; !rc && i < 2; i++) {
        const qn_pipe *p = i ? fma : cm;
        uint32_t rows = i ? qn_pipe_spec(fma, 2) : 64;
        rc = qn_cmd_dispatch_nz(c, p, QN_BINDS(QN_BIND(b[0]), QN_BIND(b[1]), QN_BIND(b[2]), QN_BIND(b[3]),
                                               QN_BIND(b[4]), QN_BIND(b[5 + i])),
                                &pc, sizeof pc, ((uint64_t)AC_T * G + rows - 1) / rows, k->Hkv);
    }
    if (!rc) rc = qn_cmd_end(c);
    if (!rc) rc = qn_cmd_run(c);
    for (int i = 0; !rc && i < 2; i++) rc = qn_buf_read(v, b[5 + i], 0, got[i], sz[5]);
    qn_cmd_destroy(&c);
    for (int i = 0; i < 7; i++) qn_buf_destroy(v, &b[i]);
    return rc;
}

int qn_attn_cm_selfcheck(qn_vk *v, const qn_pipe *cm, const qn_pipe *fma, uint32_t Hq, uint32_t Hkv, uint32_t D)
{
    struct ac_case k = { .Hq = Hq, .Hkv = Hkv, .D = D, .st = 2 * Hq * D + 2 * Hkv * D };
    k.nq = (size_t)AC_T * Hq * D, k.nkv = (size_t)Hkv * AC_CAP * D, k.nproj = (size_t)AC_T * k.st;
    float *q = malloc(sizeof(float) * k.nq), *kv = malloc(sizeof(float) * 2 * k.nkv);
    float *proj = malloc(sizeof(float) * k.nproj), *got[2] = { malloc(sizeof(float) * k.nq), malloc(sizeof(float) * k.nq) };
    int rc = q && kv && proj && got[0] && got[1] ? 0 : qn_fail(-ENOMEM, "out of memory");
    qn_rng rng;
    qn_rng_seed(&rng, 0x6174636dull);
    if (!rc) {
        fill(&rng, q, k.nq, -1, 1);
        fill(&rng, kv, 2 * k.nkv, -1, 1);
        fill(&rng, proj, k.nproj, -4, 4);
        rc = ac_run(v, cm, fma, &k, q, kv, proj, got);
    }
    for (size_t i = 0; !rc && i < k.nq; i++)
        if (!(fabsf(got[0][i] - got[1][i]) <= 3e-3f))
            rc = qn_fail(QN_E_UNSUPPORTED, "tensor-core attention self-check (%s): out[%zu] = %g, attn_prefill %g",
                         qn_pipe_info(cm)->name, i, (double)got[0][i], (double)got[1][i]);
    free(q);
    free(kv);
    free(proj);
    free(got[0]);
    free(got[1]);
    return rc;
}
