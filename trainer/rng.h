/* rng.h — the trainer's deterministic random numbers: splitmix64 seeding a xoshiro256**
 * stream. Same seed, same numbers on every machine; nothing depends on libc's rand. */
#ifndef OT_RNG_H
#define OT_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct ot_rng {
    uint64_t s[4];
} ot_rng;

static inline uint64_t ot_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void ot_rng_seed(ot_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = ot_splitmix64(&seed);
}

static inline uint64_t ot_rng_next(ot_rng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double ot_rng_uniform(ot_rng *r) { return (double)(ot_rng_next(r) >> 11) * 0x1.0p-53; }

/* Standard normal (Box–Muller; one value per call, the partner discarded for simplicity). */
static inline double ot_rng_normal(ot_rng *r) {
    double u1 = ot_rng_uniform(r), u2 = ot_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
