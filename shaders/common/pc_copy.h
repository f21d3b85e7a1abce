/* pc_copy.h — push constants of the copy kernel (copy.comp): dst = src over n 16-byte words. */
#ifndef QN_PC_COPY_H
#define QN_PC_COPY_H
QN_STRUCT(qn_pc_copy)
    QN_U32 n;
QN_STRUCT_END(qn_pc_copy)
#endif
