/* qn_err.h — error codes and messages shared by every room.
 *
 * Functions return 0 on success or a negative code: -errno values (-EINVAL, -ENOMEM, -EIO, -ENOENT ...)
 * or one of the QN_E_* codes below. The human-readable reason is kept per thread and read with
 * qn_errmsg(); qn_fail() sets it and returns the code so a failing path is one line:
 *     if (n > max) return qn_fail(-EINVAL, "%s: tensor '%s' has %d dims", path, name, n);
 * Nothing in runtime/ or loader/ calls exit(). */
#ifndef QN_ERR_H
#define QN_ERR_H

#include <errno.h>
#include <stdarg.h>

#define QN_E_VULKAN      (-1001) /* a Vulkan call failed */
#define QN_E_NODEV       (-1002) /* no usable Vulkan device / loader */
#define QN_E_FORMAT      (-1003) /* a file is malformed */
#define QN_E_UNSUPPORTED (-1004) /* valid input we do not handle */
#define QN_E_SKIP        (-1005) /* tests: a precondition is missing (skip, never pass) */

#if defined(__GNUC__)
#define QN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define QN_PRINTF(a, b)
#endif

/* Set this thread's error message and return `code` (a negative value). */
int qn_fail(int code, const char *fmt, ...) QN_PRINTF(2, 3);
/* Prefix the current message with more context ("loading X: " + old) and return `code`. */
int qn_fail_ctx(int code, const char *fmt, ...) QN_PRINTF(2, 3);
/* The last message set on this thread ("" if none). */
const char *qn_errmsg(void);
/* A short name for a code ("EINVAL", "QN_E_FORMAT" ...). */
const char *qn_errname(int code);

#endif
