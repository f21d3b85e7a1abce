/* qn_env.h — numeric environment knobs (QNEXT_*): one parser for every module.
 *
 * qn_env_u64(name, def, lo, hi): the variable's value as an unsigned integer (decimal, 0x hex or 0 octal, as
 * strtoull base 0 reads it). Unset or empty gives `def`. A malformed value (not a whole number, trailing
 * characters, a minus sign) or one outside [lo, hi] gives `def` too, with one warning per variable naming the
 * value, the accepted range and the default used — never a silent 0. (Overflow past 2^64 - 1 is malformed.) */
#ifndef QN_ENV_H
#define QN_ENV_H

#include <stdint.h>

uint64_t qn_env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi);

#endif
