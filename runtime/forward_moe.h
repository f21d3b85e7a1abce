/* forward_moe.h — internal to forward.c: the MoE block's expert half (forward_moe.c). */
#ifndef QN_FORWARD_MOE_H
#define QN_FORWARD_MOE_H

#include "forward_rec.h"

/* Layer l's x[T, H] += sum_k w[t, k] expert_{ids[t, k]}(xn) + sg[t] shared(xn) (the route's outputs in f->ids, w, sg,
 * act; pc from forward.c's moe_pc), with the host tier's gather first where it applies. */
void qn_fwd_moe_experts(struct rec *r, int l, const qn_pc_moe *pc);

/* The largest call whose GGUF block experts run on the per-token kernels: tune.small_t, or above it f->moe_token_t
 * (env QNEXT_MOE_TOKEN_T). */
uint32_t qn_fwd_moe_token_t(const qn_fwd *f);

#endif
