/* err.c — per-thread error message and code names. */
#include "qn_err.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char qn_msg[1024];

int qn_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(qn_msg, sizeof qn_msg, fmt, ap);
    va_end(ap);
    return code;
}

int qn_fail_ctx(int code, const char *fmt, ...)
{
    char old[sizeof qn_msg];
    va_list ap;
    memcpy(old, qn_msg, sizeof old);
    va_start(ap, fmt);
    int n = vsnprintf(qn_msg, sizeof qn_msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof qn_msg - 2) {
        size_t k = (size_t)n, room = sizeof qn_msg - k;
        qn_msg[k] = ':';
        qn_msg[k + 1] = ' ';
        memcpy(qn_msg + k + 2, old, room - 2);
        qn_msg[sizeof qn_msg - 1] = 0;
    }
    return code;
}

const char *qn_errmsg(void) { return qn_msg; }

const char *qn_errname(int code)
{
    switch (code) {
    case 0: return "OK";
    case QN_E_VULKAN: return "QN_E_VULKAN";
    case QN_E_NODEV: return "QN_E_NODEV";
    case QN_E_FORMAT: return "QN_E_FORMAT";
    case QN_E_UNSUPPORTED: return "QN_E_UNSUPPORTED";
    case QN_E_SKIP: return "QN_E_SKIP";
    case -EINVAL: return "EINVAL";
    case -ENOMEM: return "ENOMEM";
    case -EIO: return "EIO";
    case -ENOENT: return "ENOENT";
    case -ERANGE: return "ERANGE";
    case -ENOSPC: return "ENOSPC";
    default: return "error";
    }
}
