/* pc_sample.h — push constants of the on-GPU token choice: argmax (shaders/argmax.comp) and the top-k
 * candidate list for the host sampler (shaders/topk.comp). */
#ifndef QN_PC_SAMPLE_H
#define QN_PC_SAMPLE_H

/* argmax, two passes over n f32 logits (NaN never wins; ties -> the lowest id):
 *   pass 0: workgroup g scans [g * per_group, min(n, (g + 1) * per_group)) -> part[g] = (value, id)
 *   pass 1: one workgroup reduces part[0 .. ngroups) -> out[out_index] = id (int32; -1 if every logit is NaN),
 *           out[out_index + 1] = its logit (f32 bits) */
QN_STRUCT(qn_pc_argmax)
    QN_U32 n;
    QN_U32 per_group;
    QN_U32 ngroups;
    QN_U32 out_index;
QN_STRUCT_END(qn_pc_argmax)

/* topk_logits: each workgroup takes a segment of `seg` candidates (seg = 2 * workgroup size * per-thread
 * pairs, a power of two), sorts it by (value descending, id ascending) and writes its first k entries to
 * out[group * k ...]. src = 0: candidates are logits x[0 .. n) with id = index; src = 1: candidates are
 * (value, id) pairs in[0 .. n). Repeat on the outputs until one group remains: its k entries are the top k
 * of all n. Padding entries are (-inf, 0xffffffff); NaN counts as -inf. */
QN_CONST(QN_TOPK_SRC_LOGITS, 0u)
QN_CONST(QN_TOPK_SRC_CAND, 1u)
QN_STRUCT(qn_pc_topk)
    QN_U32 n;
    QN_U32 k;
    QN_U32 src;
QN_STRUCT_END(qn_pc_topk)

#endif
