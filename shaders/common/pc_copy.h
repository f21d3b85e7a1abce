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
    QN_U32 mode;          /* 0: ids[0..n) (decode); 1: mark flags[ids[j]] = 1, j < n (flags bound at 1);
                             2: every expert e with flags[e] != 0 (flags bound at 0) into staging slot e */
    QN_U32 mapped;        /* 0: host slabs in slot layout; 1: parts at offs[(layer E + e) 3 + p] of src */
    QN_U32 pw0;           /* mapped: words of part p (gate, up, down) in this layer */
    QN_U32 pw1;
    QN_U32 pw2;
    QN_U32 pd0;           /* mapped: word offset of part p inside its set's slot */
    QN_U32 pd1;
    QN_U32 pd2;
    QN_U32 pset;          /* mapped: bit p set = part p goes to the down set (ddst) */
QN_STRUCT_END(qn_pc_gather)
#endif
