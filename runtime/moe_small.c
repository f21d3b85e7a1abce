/* moe_small.c — the prefill MoE path for few tokens per expert (moe_small.h): the T-based choice and the
 * spec constants of moe_qsmall.comp. */
#include "moe_small.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_log.h"

const uint32_t qn_moe_small_nts[QN_MOE_SMALL_NNT] = { 4, 8, 16 };

int qn_moe_small_nt_index(uint32_t nt)
{
    for (int i = 0; i < QN_MOE_SMALL_NNT; i++)
        if (qn_moe_small_nts[i] == nt) return i;
    return -1;
}

uint32_t qn_moe_small_width(void)
{
    const char *on = getenv("QNEXT_MOE_SMALL"), *nt = getenv("QNEXT_MOE_SMALL_NT");
    if (on && !strcmp(on, "0")) return 0;
    if (nt && qn_moe_small_nt_index((uint32_t)atoi(nt)) >= 0) return (uint32_t)atoi(nt);
    return 8;
}

bool qn_moe_small_enabled(void)
{
    const char *on = getenv("QNEXT_MOE_SMALL"), *mx = getenv("QNEXT_MOE_SMALL_MAX");
    return qn_moe_small_width() && ((on && !strcmp(on, "1")) || (mx && *mx));
}

uint32_t qn_moe_small_nt(uint32_t T, uint32_t E, uint32_t K)
{
    /* off unless asked for (QNEXT_MOE_SMALL=1 or QNEXT_MOE_SMALL_MAX): on the H100 (run 16, full 80B Q4_K_M) the
     * tiled kernels beat it at every prompt length tried: 32 tokens 243 vs 200 tok/s, 64: 349 vs 281, 128: 549 vs
     * 419, 256: 957 vs 610 */
    if (!qn_moe_small_enabled()) return 0;
    const char *on = getenv("QNEXT_MOE_SMALL");
    if (on && !strcmp(on, "1")) return qn_moe_small_width();
    double m = E ? (double)T * K / E : 1e30;
    return m <= atof(getenv("QNEXT_MOE_SMALL_MAX")) ? qn_moe_small_width() : 0;
}

/* QNEXT_MOE_SMALL_LAYOUT's gate_up (part 0) or down (part 1) half: WG, ROWS, SGROWS, XSH */
static bool env_layout(int part, uint32_t lay[4])
{
    const char *e = getenv("QNEXT_MOE_SMALL_LAYOUT");
    unsigned v[8];
    if (!e) return false;
    if (sscanf(e, "%u,%u,%u,%u:%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8 || !v[0] ||
        !v[1] || !v[2] || !v[4] || !v[5] || !v[6] || (v[2] & (v[2] - 1)) || (v[6] & (v[6] - 1))) {
        QN_WARN("QNEXT_MOE_SMALL_LAYOUT=%s is not WG,ROWS,SGROWS,XSH:WG,ROWS,SGROWS,XSH (SGROWS a power of two); "
                "ignored", e);
        return false;
    }
    for (int i = 0; i < 4; i++) lay[i] = v[4 * part + i];
    return true;
}

void qn_moe_small_spec(const struct qn_caps *c, bool gate_up, uint32_t nt, uint32_t part_off, uint32_t len,
                       uint32_t spec[QN_MOE_SMALL_NSPEC])
{
    uint32_t lay[4] = { 128, gate_up ? 32 : 64, gate_up && nt >= 16 ? 1 : 2, 1 }; /* <= 32 partial sums per lane */
    env_layout(gate_up ? 0 : 1, lay);
    uint32_t n4 = ((len + 3) / 4 + 7) / 8 * 8; /* staged vec4 per token slot */
    uint64_t rest = 16 + 8ull * nt + 64, xsn = 0; /* moe_qsmall.comp's other shared arrays */
    if (lay[3] && c->max_shared > rest) xsn = (c->max_shared - rest) / (16ull * n4);
    spec[0] = lay[0];
    spec[1] = nt;
    spec[2] = lay[1];
    spec[3] = lay[2];
    spec[4] = part_off;
    spec[5] = xsn ? n4 : 0;
    spec[6] = xsn < nt ? (uint32_t)xsn : nt;
}

uint32_t qn_moe_small_rows(const qn_pipe *p) { return qn_pipe_spec(p, 2); }
