/* moe_small.c — the prefill MoE paths for few tokens per expert (moe_small.h): the T-based choices and the
 * spec constants of moe_qsmall.comp and moe_qmt.comp. */
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

/* ---- moe_qmt.comp ---------------------------------------------------------------------------------------------- */

/* QNEXT_MOE_MT_PAIRS: "HI" or "LO,HI" -> lo, hi; unset or empty: 0, QN_MOE_MT_PAIRS_I8 for the int8 twins, else 0,
 * 12 (f32, H100 run 23, full 80B Q4_K_M, prefill-ab tok/s with 24: 256 tokens 1591-1633 vs 1245-1256, 512 2243-2270
 * vs 2106-2128, 1024 (20 pairs) 2491 vs 3053-3072); false when "0" or malformed (warned) */
static bool mt_pairs(bool i8, double *lo, double *hi)
{
    const char *e = getenv("QNEXT_MOE_MT_PAIRS");
    if (!e || !*e) {
        *lo = 0, *hi = i8 ? QN_MOE_MT_PAIRS_I8 : 12;
        return true;
    }
    if (!strcmp(e, "0")) return false;
    double a = 0, b = 0;
    int n = sscanf(e, "%lf,%lf", &a, &b);
    if (n == 1) b = a, a = 0;
    if (n < 1 || a < 0 || b <= 0 || b < a) {
        QN_WARN("QNEXT_MOE_MT_PAIRS=%s is not HI or LO,HI (pairs per expert, 0 <= LO <= HI, HI > 0); ignored", e);
        return false;
    }
    *lo = a, *hi = b;
    return true;
}

bool qn_moe_mt_enabled(void)
{
    double lo, hi;
    return mt_pairs(false, &lo, &hi);
}

bool qn_moe_mt_take(uint32_t T, uint32_t E, uint32_t K, bool i8)
{
    double lo, hi, m = E ? (double)T * K / E : 1e30;
    return mt_pairs(i8, &lo, &hi) && m >= lo && m <= hi;
}

/* QNEXT_MOE_MT_LAYOUT's gate_up (part 0) or down (part 1) half: WG, NT, NR, LK, CK */
static bool mt_env_layout(int part, uint32_t lay[5])
{
    const char *e = getenv("QNEXT_MOE_MT_LAYOUT");
    unsigned v[10];
    if (!e || !*e) return false;
    bool ok = sscanf(e, "%u,%u,%u,%u,%u:%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
                     &v[9]) == 10;
    for (int i = 0; ok && i < 10; i += 5)
        ok = v[i] && v[i] <= 1024 && v[i + 1] >= 4 && v[i + 1] <= 64 && v[i + 2] >= 1 && v[i + 2] <= 4 && v[i + 3] &&
             !(v[i + 3] & (v[i + 3] - 1)) && v[i] % v[i + 3] == 0 && v[i + 4] && v[i + 4] % 256 == 0;
    if (!ok) {
        QN_WARN("QNEXT_MOE_MT_LAYOUT=%s is not WG,NT,NR,LK,CK:WG,NT,NR,LK,CK (NT 4..64, NR 1..4, LK a power of two "
                "dividing WG, CK a multiple of 256); ignored", e);
        return false;
    }
    for (int i = 0; i < 5; i++) lay[i] = v[5 * part + i];
    return true;
}

uint64_t qn_moe_mt_shared(bool i8, bool gate_up, uint32_t nt, uint32_t ck)
{
    uint64_t f32 = 16ull * (nt * ck / 4 + 1), q8 = 24ull * nt * ck / 16;
    return (!i8 ? f32 : gate_up ? q8 : f32 + q8) + 8ull * nt;
}

static void mt_spec(const struct qn_caps *c, bool i8, bool gate_up, uint32_t part_off, uint32_t spec[QN_MOE_MT_NSPEC])
{
    uint32_t lay[5] = { 256, 16, 2, 4, 256 };
    const char *pf = getenv("QNEXT_MOE_MT_PF");
    mt_env_layout(gate_up ? 0 : 1, lay);
    uint32_t sgmin = c->subgroup_min ? c->subgroup_min : c->subgroup_size;
    while (lay[3] > 1 && lay[3] > sgmin) lay[3] /= 2;
    while (lay[1] > 4 && qn_moe_mt_shared(i8, gate_up, lay[1], lay[4]) > c->max_shared) lay[1] /= 2;
    spec[0] = lay[0];
    spec[1] = lay[1];
    spec[2] = lay[2];
    spec[3] = lay[3];
    spec[4] = part_off;
    spec[5] = lay[4];
    spec[6] = pf && !strcmp(pf, "1") ? 1 : 0;
}

void qn_moe_mt_spec(const struct qn_caps *c, bool gate_up, uint32_t part_off, uint32_t spec[QN_MOE_MT_NSPEC])
{
    mt_spec(c, false, gate_up, part_off, spec);
}

void qn_moe_mt_spec_i8(const struct qn_caps *c, bool gate_up, uint32_t part_off, uint32_t spec[QN_MOE_MT_NSPEC])
{
    mt_spec(c, true, gate_up, part_off, spec);
}

bool qn_moe_mt_i8(void)
{
    const char *e = getenv("QNEXT_MOE_MT_I8");
    return !e || strcmp(e, "0");
}

uint32_t qn_moe_mt_rows(const qn_pipe *p) { return qn_pipe_spec(p, 0) / qn_pipe_spec(p, 3) * qn_pipe_spec(p, 2); }

uint32_t qn_moe_mt_tile(const qn_pipe *gu, const qn_pipe *dn)
{
    uint32_t a = qn_pipe_spec(gu, 1), b = qn_pipe_spec(dn, 1);
    return a < b ? a : b;
}
