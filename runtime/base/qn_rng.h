/* qn_rng.h — small deterministic PRNG (splitmix64 seeding + xoshiro256**) for tests, synth and sampling. */
#ifndef QN_RNG_H
#define QN_RNG_H

#include <stdint.h>

typedef struct qn_rng { uint64_t s[4]; } qn_rng;

void qn_rng_seed(qn_rng *r, uint64_t seed);
uint64_t qn_rng_u64(qn_rng *r);
float qn_rng_uniform(qn_rng *r);            /* [0, 1) */
float qn_rng_range(qn_rng *r, float lo, float hi);
float qn_rng_normal(qn_rng *r);             /* mean 0, std 1 */

#endif
