/* strmap.c — see strmap.h. Linear probing over a power-of-two table, FNV-1a hash. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ot_strmap {
    char **keys;
    int *vals;
    size_t cap, len;
};

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

ot_strmap *ot_strmap_new(void) {
    ot_strmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 64;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->vals) {
        ot_strmap_free(m);
        return NULL;
    }
    return m;
}

void ot_strmap_free(ot_strmap *m) {
    if (!m) return;
    for (size_t i = 0; m->keys && i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    free(m);
}

static size_t slot(const ot_strmap *m, const char *key) {
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

static ot_status grow(ot_strmap *m) {
    ot_strmap big = {calloc(m->cap * 2, sizeof(char *)), calloc(m->cap * 2, sizeof(int)), m->cap * 2, m->len};
    if (!big.keys || !big.vals) {
        free(big.keys);
        free(big.vals);
        return ot_errorf(OT_E_NOMEM, "out of memory growing a name table");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = slot(&big, m->keys[i]);
        big.keys[j] = m->keys[i];
        big.vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    *m = big;
    return OT_OK;
}

ot_status ot_strmap_put(ot_strmap *m, const char *key, int value) {
    if ((m->len + 1) * 2 > m->cap) OT_TRY(grow(m));
    size_t i = slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = strdup(key);
        if (!m->keys[i]) return ot_errorf(OT_E_NOMEM, "out of memory");
        m->len++;
    }
    m->vals[i] = value;
    return OT_OK;
}

int ot_strmap_get(const ot_strmap *m, const char *key, int *value) {
    size_t i = slot(m, key);
    if (!m->keys[i]) return 0;
    *value = m->vals[i];
    return 1;
}
