/* forward_pipes.h — internal to forward.c and forward_pipes.c: making the forward graph's pipelines (which
 * kernels and spec constants a model needs on this device) and the two small maps both files use. */
#ifndef QN_FORWARD_PIPES_H
#define QN_FORWARD_PIPES_H

#include <stdint.h>

#include "forward.h"
#include "quant.h"

/* Pipeline index of a dense dtype: bf16 0, f16 1, f32 2. */
static inline int qn_fwd_dt_index(qn_dtype t) { return t == QN_DT_BF16 ? 0 : t == QN_DT_F16 ? 1 : 2; }

/* qmatvec pipeline index of a ggml block type, -1 if there is no kernel for it */
static inline int qn_fwd_q_index(uint32_t qtype)
{
    switch (qtype) {
    case QN_GGML_Q8_0: return 0;
    case QN_GGML_Q4_0: return 1;
    case QN_GGML_Q4_K: return 2;
    case QN_GGML_Q5_K: return 3;
    case QN_GGML_Q6_K: return 4;
    default: return -1;
    }
}

/* mv_parts.comp's type signature of a GGUF mixed-type weight's parts (its spec 6: 4 bits per part, 0 f32, 1 + q_index
 * for block types, 15 past the last part); 0 if it has no parts, more than 4, or a part mv_parts cannot run. */
uint32_t qn_fwd_parts_sig(const qn_wt *W);

/* Every pipeline of f->m on f->v except the RMSNorm-prologue matvecs (f->tune and env overrides applied; sets
 * f->coopmat and f->tile_t). 0 or a negative code. */
int qn_fwd_make_pipes(qn_fwd *f);
/* The matvecs with the RMSNorm prologue and router epilogue; after qn_fwd_make_pipes (reuses its layouts). */
int qn_fwd_make_norm_pipes(qn_fwd *f);

#endif
