/* model_bytes.c — what one decoded token reads of a loaded model's weights, for bench's bandwidth figure. */
#include "model.h"

#include "quant.h"

bool qn_model_shared_down_q(const struct qn_mlayer *L)
{
    const qn_wt *sd = &L->shared_down;
    return sd->nsub == 1 && sd->sub[0].qtype == L->exp_qtype[2] && sd->sub[0].row0 == 0 && sd->sub[0].rows == sd->rows;
}

/* Bytes of w that a decode step's kernels bind: the parts of a GGUF mixed-type fusion (their own types; the f32
 * copy, if any, is prefill's), else the tensor. */
static uint64_t decode_wt_bytes(const qn_wt *w)
{
    if (!w->nsub) return w->bytes;
    uint64_t b = 0;
    for (uint32_t i = 0; i < w->nsub; i++) b += w->sub[i].bytes;
    return b;
}

/* Bytes of one routed expert of layer l (gate + up + down) as the kernels read it: GGUF blocks of the layer's own
 * types (the slots are sized for the largest layer), else the slot's parts. */
static uint64_t expert_read_bytes(const qn_model *m, const struct qn_mlayer *L)
{
    const qn_config *c = &m->c;
    if (!L->exp_qtype[0]) return m->exp_part_bytes[0] + m->exp_part_bytes[1] + m->exp_part_bytes[2];
    uint64_t gu = 0, dn = 0, b = 0;
    if (!qn_ggml_row_bytes(L->exp_qtype[0], (uint64_t)c->hidden_size, &gu)) b += gu * (uint64_t)c->moe_inter;
    if (!qn_ggml_row_bytes(L->exp_qtype[1], (uint64_t)c->hidden_size, &gu)) b += gu * (uint64_t)c->moe_inter;
    if (!qn_ggml_row_bytes(L->exp_qtype[2], (uint64_t)c->moe_inter, &dn)) b += dn * (uint64_t)c->hidden_size;
    return b;
}

uint64_t qn_model_decode_bytes(const qn_model *m)
{
    const qn_config *c = &m->c;
    uint64_t b = m->embed.rows ? m->embed.bytes / m->embed.rows : 0; /* the token's embedding row */
    b += decode_wt_bytes(&m->norm) + decode_wt_bytes(&m->lm_head);
    for (int l = 0; l < c->num_layers; l++) {
        const struct qn_mlayer *L = &m->L[l];
        const qn_wt *w[] = { &L->in_norm, &L->post_norm, &L->w_in, &L->conv_w, &L->A_log, &L->dt_bias, &L->gnorm,
                             &L->w_out, &L->w_qkv, &L->q_norm, &L->k_norm, &L->w_o, &L->w_moe };
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) b += decode_wt_bytes(w[i]);
        b += qn_model_shared_down_q(L) ? L->shared_down.sub[0].bytes : L->shared_down.bytes;
        b += (uint64_t)c->top_k * expert_read_bytes(m, L);
    }
    return b;
}
