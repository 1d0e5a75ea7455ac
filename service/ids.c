/* ids.c — random object ids (see ids.h). Randomness comes from getrandom(2); a byte is
 * used only when it falls below the largest multiple of 62 (rejection sampling), so every
 * base62 character is equally likely. */
#include "service/ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

ot_status ot_id_new(const char *prefix, char out[OT_ID_MAX]) {
    size_t pl = strlen(prefix);
    if (pl + OT_ID_RANDOM_LEN + 1 > OT_ID_MAX) return ot_errorf(OT_E_INVALID, "id prefix '%s' is too long", prefix);
    memcpy(out, prefix, pl);
    size_t got = 0;
    unsigned char buf[64];
    for (int tries = 0; got < OT_ID_RANDOM_LEN && tries < 64; tries++) {
        ssize_t r = getrandom(buf, sizeof buf, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return ot_errorf(OT_E_IO, "getrandom failed: %s", strerror(errno));
        }
        for (ssize_t i = 0; i < r && got < OT_ID_RANDOM_LEN; i++)
            if (buf[i] < 248) out[pl + got++] = B62[buf[i] % 62]; /* 248 = 4 x 62 */
    }
    if (got < OT_ID_RANDOM_LEN) return ot_errorf(OT_E_IO, "getrandom returned too few bytes");
    out[pl + OT_ID_RANDOM_LEN] = '\0';
    return OT_OK;
}

int ot_id_valid(const char *s, const char *prefix) {
    if (!s || !prefix) return 0;
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0 || strlen(s) != pl + OT_ID_RANDOM_LEN) return 0;
    for (size_t i = pl; s[i]; i++)
        if (!strchr(B62, s[i])) return 0;
    return 1;
}
