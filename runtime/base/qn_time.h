/* qn_time.h — wall-clock timing for stats, progress and benchmarks. */
#ifndef QN_TIME_H
#define QN_TIME_H

#include <stdint.h>

/* Seconds on the monotonic clock (an arbitrary origin; subtract two readings). */
double qn_now_s(void);
/* Nanoseconds on the same clock (deadlines, busy-time counters). */
uint64_t qn_now_ns(void);

#endif
