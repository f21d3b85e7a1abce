/* tensors.h — the tensor list of a qwen3_next checkpoint (hub names and shapes) for a given config.
 *
 * One place that knows every tensor name: the loaders check a checkpoint against it (qn_st_check_model in
 * safetensors.h) and `qnext synth` writes checkpoints from it. */
#ifndef QN_TENSORS_H
#define QN_TENSORS_H

#include <stdint.h>

#include "config.h"

typedef struct qn_tensor_spec {
    char name[128];
    int ndim;
    int64_t shape[3];
    int layer;   /* -1 for global tensors */
    int expert;  /* routed expert index, -1 otherwise */
} qn_tensor_spec;

/* Call fn for every tensor of the main model (no mtp.*), globals first, then layer by layer, experts in index
 * order. Stops and returns fn's value when it returns non-zero; returns 0 after the last tensor. */
int qn_cfg_tensors(const qn_config *c, int (*fn)(void *user, const qn_tensor_spec *t), void *user);
/* Number of tensors qn_cfg_tensors() enumerates. */
int64_t qn_cfg_tensor_count(const qn_config *c);

#endif
