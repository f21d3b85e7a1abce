/* moe_small.h — the prefill MoE paths for few tokens per expert (shaders/moe_qsmall.comp and moe_qmt.comp, multi-token
 * matvecs over moe_sort's tiles): when a call takes it, the tile width moe_sort must cut (= the kernels' token slots QN_NT), and
 * the kernels' specialization constants. Used by forward.c / forward_pipes.c and the kernel test. */
#ifndef QN_MOE_SMALL_H
#define QN_MOE_SMALL_H

#include <stdbool.h>
#include <stdint.h>

#include "vk.h"

#define QN_MOE_SMALL_NSPEC 7 /* moe_qsmall.comp: WG, NT, ROWS, SGROWS, PART_OFF, XSH, XSN */
#define QN_MOE_SMALL_NNT 3   /* token-slot widths with their own pipelines: */
extern const uint32_t qn_moe_small_nts[QN_MOE_SMALL_NNT]; /* 4, 8, 16 */

/* Token slots per tile (QN_NT, and moe_sort's tile_t) for a prefill call of T tokens over E experts, K per token,
 * or 0 when the call should take the tiled grouped kernels instead. Rule: m = T K / E expected pairs per expert;
 * small only when asked: env QNEXT_MOE_SMALL=1 (always) or QNEXT_MOE_SMALL_MAX=<m> (when m <= that bound);
 * QNEXT_MOE_SMALL=0 never. NT 8 (env QNEXT_MOE_SMALL_NT=4|8|16 forces another). H100 run 16 (in the model, full
 * 80B Q4_K_M): the tiled kernels won at every prompt length tried (32-256 tokens: 243 vs 200 tok/s at 32, 957 vs
 * 610 at 256), so the default is off; run 14's earlier version had won at 128 tokens (648 vs 507). */
uint32_t qn_moe_small_nt(uint32_t T, uint32_t E, uint32_t K);
/* Can qn_moe_small_nt choose the small path at all (QNEXT_MOE_SMALL=1 or QNEXT_MOE_SMALL_MAX set, and not
 * QNEXT_MOE_SMALL=0)? Its pipelines are made only then. */
bool qn_moe_small_enabled(void);
/* The token-slot width qn_moe_small_nt answers when a call is small (env QNEXT_MOE_SMALL_NT, else 8), 0 when
 * QNEXT_MOE_SMALL=0: the one width forward_pipes.c makes pipelines for. */
uint32_t qn_moe_small_width(void);

/* Index of nt in qn_moe_small_nts, -1 if none. */
int qn_moe_small_nt_index(uint32_t nt);

/* Spec constants of the gate_up (gate_up true: rows of len = H floats) or down kernel (len = max(I, Is)) with nt
 * token slots: WG 128; gate_up 32 rows per workgroup, 2 per lane group (1 for nt 16); down 64 rows, 2 per lane
 * group; the inputs staged in shared memory for passes of up to XSN tokens, XSN = as many rows of len as fit in
 * c->max_shared (at most nt; 0: always read through L1). Env
 * QNEXT_MOE_SMALL_LAYOUT="WG,ROWS,SGROWS,XSH:WG,ROWS,SGROWS,XSH" (gate_up : down; XSH 0 = L1, 1 = stage if it fits)
 * replaces the defaults (timing experiments). */
void qn_moe_small_spec(const struct qn_caps *c, bool gate_up, uint32_t nt, uint32_t part_off, uint32_t len,
                       uint32_t spec[QN_MOE_SMALL_NSPEC]);

/* Output rows per workgroup of a pipeline made with qn_moe_small_spec (the dispatch: max_tiles x ceil(rows / this)). */
uint32_t qn_moe_small_rows(const qn_pipe *p);

/* ---- moe_qmt.comp: the multi-token grouped matvec for a few to some dozens of pairs per expert ---------------- */
#define QN_MOE_MT_NSPEC 7 /* moe_qmt.comp: WG, NT, NR, LK, PART_OFF, CK, UPF */

/* Does a prefill call of T tokens over E experts, K per token, take moe_qmt.comp (i8: its int8 twins)? Env
 * QNEXT_MOE_MT_PAIRS="HI" or "LO,HI": when LO <= T K / E <= HI (LO default 0); unset: the int8 twins up to
 * QN_MOE_MT_PAIRS_I8 pairs per expert (H100 run 31: 1024 tokens = 20 pairs 4431 tok/s vs 3694 at 12), the f32
 * kernels up to 12 (H100 run 23: +28% at 256 tokens, +6% at 512, -19% at 1024); "0": never. The per-token kernels still take calls up to QNEXT_MOE_TOKEN_T tokens
 * (run 23: moe_qmt at 128 tokens with QNEXT_MOE_TOKEN_T=0 gave 1007 tok/s against their 935). */
enum { QN_MOE_MT_PAIRS_I8 = 24 };
bool qn_moe_mt_take(uint32_t T, uint32_t E, uint32_t K, bool i8);
/* Is QNEXT_MOE_MT_PAIRS set so that some call may take it (its pipelines are made only then)? */
bool qn_moe_mt_enabled(void);

/* Spec constants of moe_qmt.comp's gate_up (gate_up true; part_off = the up part's byte offset in a gate|up slot) or
 * down kernel on device c: defaults WG 256, NT 16, NR 2, LK 4, CK 256 (128 rows per workgroup; H100 run 22's kernel
 * bench at T 512: 2.88 ms per layer against 3.65 with WG 128 and 3.33 for the tensor-core small-pairs layout); env
 * QNEXT_MOE_MT_LAYOUT="WG,NT,NR,LK,CK:WG,NT,NR,LK,CK" (gate_up : down) replaces them (timing experiments), env
 * QNEXT_MOE_MT_PF=1 sets UPF (each lane's next weight unit loaded before the current one is computed). LK is
 * clamped to the device's smallest subgroup, NT to what fits in shared memory (at least 4; moe_sort's tiles of
 * qn_moe_mt_tile never hold fewer). */
void qn_moe_mt_spec(const struct qn_caps *c, bool gate_up, uint32_t part_off, uint32_t spec[QN_MOE_MT_NSPEC]);
/* ... for the int8 twins (moe_q_{gu,dn}_mt_i8_*: QN_I8), whose token slots fit another shared-memory size */
void qn_moe_mt_spec_i8(const struct qn_caps *c, bool gate_up, uint32_t part_off, uint32_t spec[QN_MOE_MT_NSPEC]);
/* Shared memory of a moe_qmt pipeline (i8: the QN_I8 twin) with nt token slots and chunks of ck elements. */
uint64_t qn_moe_mt_shared(bool i8, bool gate_up, uint32_t nt, uint32_t ck);
/* moe_qmt's int8 twins (inputs quantized per 32, packed 4x8-bit dots) where the device has the integer dot product:
 * the default (H100 run 31, full 80B Q4_K_M: 512 tokens 3714-3778 tok/s vs 2470-2495 with the f32 kernels); env
 * QNEXT_MOE_MT_I8=0 keeps the f32 ones. */
bool qn_moe_mt_i8(void);
/* Output rows per workgroup of a moe_qmt pipeline (WG / LK * NR: the dispatch is max_tiles x ceil(rows / this)). */
uint32_t qn_moe_mt_rows(const qn_pipe *p);
/* moe_sort's tile width for a gate_up / down pair of moe_qmt pipelines: the smaller NT, so each tile is one pass. */
uint32_t qn_moe_mt_tile(const qn_pipe *gu, const qn_pipe *dn);

#endif
