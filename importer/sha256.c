/* sha256.c — see sha256.h. One EVP digest context per call; errors name the file. */
#include "sha256.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void to_hex(const unsigned char *md, char hex[OT_SHA256_HEX_LEN + 1]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[OT_SHA256_HEX_LEN] = '\0';
}

ot_status ot_sha256_hex(const void *data, size_t n, char hex[OT_SHA256_HEX_LEN + 1]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) || len != 32)
        return ot_errorf(OT_E_INTERNAL, "sha256: libcrypto digest failed");
    to_hex(md, hex);
    return OT_OK;
}

ot_status ot_sha256_file(const char *path, char hex[OT_SHA256_HEX_LEN + 1]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ot_errorf(OT_E_IO, "sha256: cannot open '%s': %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        return ot_errorf(OT_E_INTERNAL, "sha256: libcrypto digest init failed");
    }
    static _Thread_local unsigned char buf[1 << 16];
    ot_status st = OT_OK;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = ot_errorf(OT_E_IO, "sha256: cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)r)) {
            st = ot_errorf(OT_E_INTERNAL, "sha256: libcrypto digest update failed");
            break;
        }
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (st == OT_OK && (!EVP_DigestFinal_ex(ctx, md, &len) || len != 32))
        st = ot_errorf(OT_E_INTERNAL, "sha256: libcrypto digest final failed");
    if (st == OT_OK) to_hex(md, hex);
    EVP_MD_CTX_free(ctx);
    close(fd);
    return st;
}

int ot_sha256_is_hex(const char *s) {
    for (int i = 0; i < OT_SHA256_HEX_LEN; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return s[OT_SHA256_HEX_LEN] == '\0';
}
