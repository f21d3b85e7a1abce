/* qn_time.h — wall-clock timing for stats, progress and benchmarks. */
#ifndef QN_TIME_H
#define QN_TIME_H

/* Seconds on the monotonic clock (an arbitrary origin; subtract two readings). */
double qn_now_s(void);

#endif
