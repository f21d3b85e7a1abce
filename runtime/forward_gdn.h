/* forward_gdn.h — internal to forward.c: the Gated DeltaNet mixer's recording (forward_gdn.c). */
#ifndef QN_FORWARD_GDN_H
#define QN_FORWARD_GDN_H

#include "forward_rec.h"

/* Layer l's o[T, Hv, dv] = gated RMSNorm(delta rule(silu(causal conv(proj[:, :CD]))), z) from proj[T, P] =
 * [q | k | v | z | b | a], the conv and delta-rule states updated; r->T == 1 is the decode graph. */
void qn_fwd_gdn(struct rec *r, int l);

#endif
