/* sha256.h — SHA-256 digests as lowercase hex, through OpenSSL's libcrypto (EVP API).
 *
 * The fetch cache names blobs by the digest of their content and refs by the digest of
 * their URL; "URL#sha256=<hex>" checks compare against ot_sha256_file. Nothing here keeps
 * state between calls. */
#ifndef OT_SHA256_H
#define OT_SHA256_H

#include <stddef.h>

#include "core/status.h"

#define OT_SHA256_HEX_LEN 64

/* Digest of `n` bytes at `data` into hex[65] (NUL-terminated). */
ot_status ot_sha256_hex(const void *data, size_t n, char hex[OT_SHA256_HEX_LEN + 1]);

/* Digest of the whole file at `path`, read in chunks (files may be larger than memory). */
ot_status ot_sha256_file(const char *path, char hex[OT_SHA256_HEX_LEN + 1]);

/* True when `s` is exactly 64 hex digits (either case). */
int ot_sha256_is_hex(const char *s);

#endif
