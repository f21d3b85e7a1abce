/* pc_embed.h — push constants of the embedding gather (shaders/embed.comp). */
#ifndef QN_PC_EMBED_H
#define QN_PC_EMBED_H

/* embed: x[t, i] = table[ids[t] - row0, i] for t < T, i < H, when row0 <= ids[t] < row0 + rows.
 * The table binding holds rows [row0, row0 + rows) of the full [V, H] table, so a table larger than
 * maxStorageBufferRange is gathered by one dispatch per piece (each writes only its own tokens). */
QN_STRUCT(qn_pc_embed)
    QN_U32 T;
    QN_U32 H;
    QN_U32 row0;
    QN_U32 rows;
QN_STRUCT_END(qn_pc_embed)

#endif
