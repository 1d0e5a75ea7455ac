/* status.c — thread-local error messages; see status.h. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define OT_ERRMSG_MAX 2048
static _Thread_local char errmsg[OT_ERRMSG_MAX];

ot_status ot_errorf(ot_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

ot_status ot_error_wrap(ot_status code, const char *fmt, ...) {
    char prefix[OT_ERRMSG_MAX], old[OT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errmsg, sizeof old);
    size_t np = strlen(prefix), no = strnlen(old, sizeof old - 1);
    if (np > sizeof errmsg - 1) np = sizeof errmsg - 1;
    if (no > sizeof errmsg - 1 - np) no = sizeof errmsg - 1 - np;
    memcpy(errmsg, prefix, np);
    memcpy(errmsg + np, old, no);
    errmsg[np + no] = '\0';
    return code;
}

const char *ot_last_error(void) { return errmsg; }
void ot_clear_error(void) { errmsg[0] = '\0'; }

const char *ot_status_name(ot_status s) {
    switch (s) {
    case OT_OK: return "ok";
    case OT_E_INVALID: return "invalid input";
    case OT_E_IO: return "I/O error";
    case OT_E_NOMEM: return "out of memory";
    case OT_E_UNSUPPORTED: return "unsupported";
    case OT_E_SHAPE: return "shape mismatch";
    case OT_E_FORMAT: return "bad format";
    case OT_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}
