/* status.h — error codes and the per-thread error message.
 *
 * Every fallible function in onnxtune returns an ot_status (0 = OT_OK). On failure it
 * also records a message saying what was wrong with which input (file, tensor, node,
 * field, offset, expected vs got). The message lives in thread-local storage until the
 * next ot_errorf on the same thread; callers that add context wrap it with ot_error_wrap.
 * Nothing here allocates or exits. */
#ifndef OT_STATUS_H
#define OT_STATUS_H

#include <stddef.h>

typedef enum {
    OT_OK = 0,
    OT_E_INVALID = 1,     /* bad argument or malformed input */
    OT_E_IO = 2,          /* file system or network failure */
    OT_E_NOMEM = 3,       /* allocation failed */
    OT_E_UNSUPPORTED = 4, /* valid input that onnxtune cannot handle (op, dtype, opset) */
    OT_E_SHAPE = 5,       /* shapes or dtypes do not agree */
    OT_E_FORMAT = 6,      /* a file is not of the format it claims */
    OT_E_INTERNAL = 7,    /* a broken invariant: a bug in onnxtune */
} ot_status;

#if defined(__GNUC__)
#define OT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define OT_PRINTF(a, b)
#endif

/* Records a formatted message for this thread and returns `code`, so callers can write
 * `return ot_errorf(OT_E_INVALID, "node '%s': ...", name);`. */
ot_status ot_errorf(ot_status code, const char *fmt, ...) OT_PRINTF(2, 3);

/* Prefixes the current message with more context ("loading 'm.onnx': " + old). */
ot_status ot_error_wrap(ot_status code, const char *fmt, ...) OT_PRINTF(2, 3);

/* The last message recorded on this thread ("" if none). Valid until the next error. */
const char *ot_last_error(void);
void ot_clear_error(void);
const char *ot_status_name(ot_status s);

/* Propagates a failure unchanged. */
#define OT_TRY(expr)                        \
    do {                                    \
        ot_status ot_try_s_ = (expr);       \
        if (ot_try_s_ != OT_OK) return ot_try_s_; \
    } while (0)

#endif
