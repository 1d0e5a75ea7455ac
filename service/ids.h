/* ids.h — object ids for the service: a type prefix ("file-", "ftjob-", "ftevent-",
 * "ftckpt-") followed by 24 base62 characters drawn from getrandom(). Ids are safe to use
 * as file names (ot_id_valid checks that before any path is built from one). */
#ifndef OT_SERVICE_IDS_H
#define OT_SERVICE_IDS_H

#include <stddef.h>

#include "core/status.h"

#define OT_ID_RANDOM_LEN 24
#define OT_ID_MAX 40 /* longest prefix (8) + 24 + NUL, with room to spare */

#define OT_ID_FILE "file-"
#define OT_ID_JOB "ftjob-"
#define OT_ID_EVENT "ftevent-"
#define OT_ID_CKPT "ftckpt-"

/* Writes `prefix` + 24 random base62 characters into out[0..OT_ID_MAX). Fails (OT_E_IO)
 * only when the kernel's random source does. */
ot_status ot_id_new(const char *prefix, char out[OT_ID_MAX]);

/* 1 when `s` is exactly `prefix` followed by 24 base62 characters, else 0. NULL-safe. */
int ot_id_valid(const char *s, const char *prefix);

#endif
