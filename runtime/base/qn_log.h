/* qn_log.h — leveled logging through one replaceable callback (default: stderr). */
#ifndef QN_LOG_H
#define QN_LOG_H

#include "qn_err.h"

enum qn_log_level { QN_LOG_ERROR = 0, QN_LOG_WARN = 1, QN_LOG_INFO = 2, QN_LOG_DEBUG = 3 };

typedef void (*qn_log_fn)(void *user, enum qn_log_level level, const char *msg);

/* Replace the sink (NULL restores stderr) and the most verbose level that is delivered. */
void qn_log_set(qn_log_fn fn, void *user, enum qn_log_level max_level);
enum qn_log_level qn_log_level(void);
void qn_log(enum qn_log_level level, const char *fmt, ...) QN_PRINTF(2, 3);

#define QN_ERROR(...) qn_log(QN_LOG_ERROR, __VA_ARGS__)
#define QN_WARN(...)  qn_log(QN_LOG_WARN, __VA_ARGS__)
#define QN_INFO(...)  qn_log(QN_LOG_INFO, __VA_ARGS__)
#define QN_DEBUG(...) qn_log(QN_LOG_DEBUG, __VA_ARGS__)

#endif
