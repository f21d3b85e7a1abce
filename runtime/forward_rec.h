/* forward_rec.h — internal to the forward graph's recording files (forward.c, forward_gdn.c): the state of one
 * recording (struct rec) and the small helpers every block's recorder uses. */
#ifndef QN_FORWARD_REC_H
#define QN_FORWARD_REC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "forward.h"

/* ---- small helpers ---------------------------------------------------------------------------------- */

static inline uint32_t cdiv(uint64_t a, uint64_t b) { return (uint32_t)((a + b - 1) / b); }

/* A weight tensor as a binding (rounded up to whole 16-byte words; arenas are padded to 256 bytes). */
static inline struct qn_bind wb(const qn_wt *w)
{
    uint64_t n = (w->bytes + 15) / 16 * 16;
    if (n > w->buf->size - w->off) n = w->buf->size - w->off;
    return QN_BIND_RANGE(w->buf, w->off, n);
}

/* A part of a GGUF mixed-type fusion (qn_wt.sub) as a binding: its buffer from 0, its bytes rounded up to whole 16-byte
 * words, within the buffer. */
static inline struct qn_bind sub_bind(const struct qn_wsub *s)
{
    uint64_t n = (s->bytes + 15) / 16 * 16;
    return QN_BIND_RANGE(s->buf, 0, n <= s->buf->size ? n : s->buf->size);
}

struct rec {
    qn_fwd *f;
    qn_cmd *c;
    const struct qn_fwd_call *call;
    const qn_config *cfg;
    uint32_t T;
    const char *label;  /* open profile region */
    int nmarks;
    const qn_buf *nx;   /* a pending RMSNorm of nx with weight nw (norm()), folded into the next norm_linear() */
    const qn_wt *nw;
    bool nxn;           /* ... which must also write xn (later kernels read it) */
    bool whole;         /* the whole call in this recording (qn_fwd_record, not a streaming segment) */
    bool chain_route;   /* moe_route asks route_one to mark the token routed (QN_MOE_CHAIN_OUT) */
    bool chained;       /* ... which it did: no barrier after the route, the gate_up waits (QN_MOE_CHAIN_IN) */
};

/* Open a profile region for an op family (consecutive ops of one family share a region). */
static inline void mark(struct rec *r, const char *label)
{
    if (!r->call->profile || (r->label && !strcmp(r->label, label)) || r->nmarks >= 480) return;
    qn_cmd_mark(r->c, label);
    r->label = label;
    r->nmarks++;
}

/* QNEXT_DIAG_NO_BARRIER (timing only, wrong results): drop the decode step's barriers of the stage classes it names
 * ("all", or letters: r = route -> experts, m = expert gate_up -> down), to measure what the stage boundaries cost. */
bool qn_fwd_diag_nobar(char cls);
static inline void barrier_k(struct rec *r, char cls)
{
    if (r->T == 1 && qn_fwd_diag_nobar(cls)) return;
    qn_cmd_barrier(r->c);
}
static inline void barrier(struct rec *r) { barrier_k(r, '*'); }

/* ---- helpers shared by forward.c and forward_moe.c ---------------------------------------------------- */

/* The decode MoE chain's words (common/moe_chain.glsl): the first QN_MOE_CHAIN_WORDS of the split down's scratch; a
 * kernel that does not use them (flags off) still binds a buffer there. */
static inline struct qn_bind qn_fwd_chain_bind(const qn_fwd *f) { return QN_BIND(f->dxs ? f->dxs : f->rcnt); }

/* The experts' act row in f16 for the down's twin (moe_qdn_gcm_h): max(I, Is) rounded up to 8 halves */
static inline uint32_t qn_fwd_h_act_cols(const qn_config *c)
{
    uint32_t I = (uint32_t)c->moe_inter, Is = (uint32_t)c->shared_inter;
    return ((I > Is ? I : Is) + 7u) / 8u * 8u;
}

/* to_f16.comp's dispatch: rows x cols values of src (pipeline p: a weight's blocks, or f32 rows ld apart) into f16 rows
 * of dst from its 8-half chunk out8 on (the f16 path) */
static inline void qn_fwd_to_f16(struct rec *r, const qn_pipe *p, struct qn_bind src, const qn_buf *dst, uint32_t rows,
                                 uint32_t cols, uint32_t ld, uint32_t out8)
{
    qn_pc_to_f16 pc = { .rows = rows, .cols = cols, .ld = ld, .out8 = out8 };
    qn_cmd_dispatch_n(r->c, p, QN_BINDS(src, QN_BIND(dst)), &pc, sizeof pc,
                      cdiv((uint64_t)rows * cols / 8, qn_pipe_spec(p, 0)));
}

#endif
