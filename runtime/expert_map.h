/* expert_map.h — the model files' page cache as the host tier's memory (QNEXT_HOST_MMAP=1 with --experts host,
 * issue #5; docs/streaming.md "The host tier on the page cache").
 *
 * Every file of an expert store (expert_store.h) is mapped read-only (MAP_SHARED, PROT_READ), and for each layer
 * the page range covering its routed experts' parts is imported as one storage buffer with
 * VK_EXT_external_memory_host (qn_buf_import_host): the GPU reads the page cache itself over PCIe, so no expert is
 * copied into pinned memory at load and no second copy of the experts sits in RAM. The host tier's gather
 * (expert_gather.comp, mapped = 1) copies part p of expert e of layer l from word qn_emap_offset(l, e, p) of the
 * layer's import into its VRAM staging slot; the offsets are also on the GPU (qn_emap_offsets, uint32 [L, E, 3], in
 * 16-byte words).
 *
 * Refused, naming the layer / expert / file: a device without the extension or a driver that refuses the import
 * (QN_E_UNSUPPORTED), a layer whose experts span files, part offsets or lengths that are not multiples of 16
 * bytes, a part whose length varies between the experts of a layer, a layer's range above the storage-buffer
 * range. */
#ifndef QN_EXPERT_MAP_H
#define QN_EXPERT_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "expert_store.h"
#include "vk.h"

struct qn_emap;

int qn_emap_open(struct qn_emap **out, qn_vk *v, const qn_es *es);
void qn_emap_close(struct qn_emap **mp, qn_vk *v);   /* safe on NULL; the GPU must be done with the imports */
const qn_buf *qn_emap_layer(const struct qn_emap *mp, int l);   /* layer l's import */
const qn_buf *qn_emap_offsets(const struct qn_emap *mp);        /* uint32 [L, E, 3] word offsets, device memory */
uint32_t qn_emap_offset(const struct qn_emap *mp, int l, int e, int p);
/* Part p of layer l: its length in 16-byte words, its word offset inside its set's slot, and whether that set is
 * the down set (QN_ES_DPOOLS). */
void qn_emap_part(const struct qn_emap *mp, int l, int p, uint32_t *words, uint32_t *slot_word, bool *down);
uint64_t qn_emap_bytes(const struct qn_emap *mp);   /* bytes imported, all layers */

#endif
