/* pc_copy.h — push constants of the copy kernel (copy.comp): dst = src over n 16-byte words; and of the host tier's
 * expert gather (expert_gather.comp). */
#ifndef QN_PC_COPY_H
#define QN_PC_COPY_H
QN_STRUCT(qn_pc_copy)
    QN_U32 n;
QN_STRUCT_END(qn_pc_copy)

/* expert_gather.comp (the host tier's decode gather, runtime/expert_host.h): routed experts of `layer` not in a VRAM
 * cache slot are copied from the layer's host slab to staging slots stage_base + i; sizes in 16-byte words. */
QN_STRUCT(qn_pc_gather)
    QN_U32 layer;
    QN_U32 E;
    QN_U32 n;
    QN_U32 stage_base;
    QN_U32 slot_words;
    QN_U32 dslot_words;
    QN_U32 stage_at;      /* staging slot stage_base + i lies at slot stage_at + i of the staging buffers */
QN_STRUCT_END(qn_pc_gather)
#endif
