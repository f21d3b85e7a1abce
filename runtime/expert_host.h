/* expert_host.h — the host-memory expert tier (issue #5, docs/streaming.md "Host tier"): with --experts host
 * (qn_model_params.experts_host, env QNEXT_EXPERTS=host) every routed expert is resident in pinned system
 * memory (QN_MEM_HOST pools laid out exactly like resident mode's device pools: slot = l * E + e, filled once
 * at load), the slot table and dense weights stay in VRAM, and a token is one submission as in resident mode:
 * the expert kernels read their weights over PCIe. model.c / model_gguf.c allocate the pools; this file holds
 * the checks and the report. */
#ifndef QN_EXPERT_HOST_H
#define QN_EXPERT_HOST_H

#include <stddef.h>

#include "model.h"

/* Options that do not combine with the host tier yet (--expert-cache: the VRAM cache in front of it is step 2):
 * 0 or -EINVAL naming them. */
int qn_eh_check(const struct qn_model_params *p);
/* One line (no newline) saying where the experts live: host tier with its bytes, pools and memory type, and
 * the VRAM in use; empty when the experts are not in the host tier. */
void qn_eh_describe(const qn_model *m, char *buf, size_t n);

#endif
