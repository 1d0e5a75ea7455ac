/* data_order.c — which dataset row is sample i of a run (see data_internal.h, ot_order).
 *
 * Owns the seeded epoch permutations and their two-slot cache. Invariant: the row of
 * sample i depends only on (n, shuffle, seed, i), never on which samples were asked for
 * before, so a run resumed from a saved cursor sees the same rows. */
#include <stdlib.h>
#include <string.h>

#include "trainer/data_internal.h"

/* One splitmix64 step: advances *x and returns the mixed output. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, m), m >= 1, without modulo bias. */
static uint64_t uniform_below(uint64_t *x, uint64_t m) {
    uint64_t threshold = (0 - m) % m; /* (2^64 - m) mod m: values below it are rejected */
    for (;;) {
        uint64_t r = splitmix64(x);
        if (r >= threshold) return r % m;
    }
}

void ot_order_permutation(uint64_t seed, int64_t epoch, uint32_t *perm, int64_t n) {
    uint64_t x = seed;
    uint64_t k = splitmix64(&x) ^ (uint64_t)epoch;
    uint64_t state = splitmix64(&k);
    for (int64_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)uniform_below(&state, (uint64_t)i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

ot_status ot_order_init(ot_order *o, int64_t n, int shuffle, uint64_t seed, const char *path) {
    memset(o, 0, sizeof *o);
    o->n = n;
    o->shuffle = shuffle;
    o->seed = seed;
    o->epoch[0] = o->epoch[1] = -1;
    if (shuffle && n > (int64_t)UINT32_MAX + 1)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': %lld samples per epoch; shuffling supports at most 2^32", path,
                         (long long)n);
    return OT_OK;
}

ot_status ot_order_row(ot_order *o, int64_t i, int64_t *row) {
    int64_t e = i / o->n, r = i % o->n;
    if (!o->shuffle) {
        *row = r;
        return OT_OK;
    }
    for (int s = 0; s < 2; s++)
        if (o->perm[s] && o->epoch[s] == e) {
            *row = o->perm[s][r];
            return OT_OK;
        }
    int s = o->victim;
    if (!o->perm[s]) {
        o->perm[s] = malloc((size_t)o->n * sizeof *o->perm[s]);
        if (!o->perm[s]) return ot_errorf(OT_E_NOMEM, "out of memory for a %lld-row epoch order", (long long)o->n);
    }
    ot_order_permutation(o->seed, e, o->perm[s], o->n);
    o->epoch[s] = e;
    o->victim = 1 - s;
    *row = o->perm[s][r];
    return OT_OK;
}

void ot_order_free(ot_order *o) {
    free(o->perm[0]);
    free(o->perm[1]);
    memset(o, 0, sizeof *o);
}
