/* test_lowp_convert.c — the bulk converters of core/lowp.h against dtype.h's scalar
 * functions, bit for bit, at every vector level the CPU offers (scalar, AVX2+F16C,
 * AVX-512, AVX-512 with vcvtneps2bf16; ot_lowp_force_isa caps the level).
 *
 * 16-bit -> f32: all 65536 patterns of bf16 and f16 (NaNs with every payload, signalling
 * ones included, ±inf, subnormals). f32 -> 16-bit: an edge set (±0, ±inf, quiet and
 * signalling NaNs with payloads, f32 and f16 subnormals, exact ties at both formats'
 * rounding points and their neighbours, max-finite and overflow boundaries), random bit
 * patterns, and a strided sweep of all 2^32 patterns (stride 4099, ~1.05M values). Every
 * length 0..67 at several misalignments exercises the vector tails, and the element after
 * the last must stay untouched. No tolerance: the contract is bit-identity. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/lowp.h"
#include "core/lowp_x86.h"
#include "ot_test.h"

static uint32_t rng = 0x9e3779b9u;
static uint32_t next_u32(void) { /* xorshift32 */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

typedef void (*widen_fn)(float *, const uint16_t *, size_t);
typedef void (*narrow_fn)(uint16_t *, const float *, size_t);

static uint16_t want16(int bf, float f) { return bf ? ot_f32_to_bf16(f) : ot_f32_to_f16(f); }
static uint32_t want32(int bf, uint16_t h) { return ot_f32_bits(bf ? ot_bf16_to_f32(h) : ot_f16_to_f32(h)); }

/* Reports the first mismatch of a run (bits in, out, expected) and counts one CHECK. */
static void widen_check(int bf, widen_fn fn, const uint16_t *src, size_t n, float *dst) {
    dst[n] = 12345.0f; /* sentinel */
    fn(dst, src, n);
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (ot_f32_bits(dst[i]) != want32(bf, src[i])) bad = i;
    if (bad != n)
        fprintf(stderr, "%s->f32 n=%zu: in %04x got %08x want %08x\n", bf ? "bf16" : "f16", n, src[bad],
                ot_f32_bits(dst[bad]), want32(bf, src[bad]));
    CHECK(bad == n && dst[n] == 12345.0f);
}

static void narrow_check(int bf, narrow_fn fn, const float *src, size_t n, uint16_t *dst) {
    dst[n] = 0xbeef;
    fn(dst, src, n);
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (dst[i] != want16(bf, src[i])) bad = i;
    if (bad != n)
        fprintf(stderr, "f32->%s n=%zu: in %08x got %04x want %04x\n", bf ? "bf16" : "f16", n,
                ot_f32_bits(src[bad]), dst[bad], want16(bf, src[bad]));
    CHECK(bad == n && dst[n] == 0xbeef);
}

/* All 16-bit patterns at once, then every length 0..67 at offsets 0..3 of a sliding window. */
static void test_widen_all(int bf) {
    widen_fn fn = bf ? ot_bf16_to_f32_n : ot_f16_to_f32_n;
    uint16_t *src = malloc(65536 * sizeof *src);
    float *dst = malloc((65536 + 1) * sizeof *dst);
    if (!src || !dst) exit(2);
    for (uint32_t i = 0; i < 65536; i++) src[i] = (uint16_t)i;
    widen_check(bf, fn, src, 65536, dst);
    /* windows that start on NaNs, infinities and subnormals */
    const uint32_t starts[] = {0, 1, 0x7bf0, 0x7c00, 0x7d00, 0x7f80, 0x7fc0, 0xfc01, 0xff81, 0x8001, 65536 - 70};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++)
        for (size_t off = 0; off < 4; off++)
            for (size_t n = 0; n <= 67; n++)
                if (starts[s] + off + n <= 65536) widen_check(bf, fn, src + starts[s] + off, n, dst + off);
    free(src);
    free(dst);
}

static size_t edge_set(float *v, size_t cap) {
    static const uint32_t bits[] = {
        0x00000000, 0x80000000, 0x7f800000, 0xff800000,                     /* ±0, ±inf */
        0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7fffffff, /* NaNs */
        0x7fa5a5a5, 0xffc12345, 0x7f810000, 0x7f808000, 0x7f800040,
        0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x00008000, 0x00018000, /* f32 subnormals */
        0x00007fff, 0x00008001, 0x0000ffff, 0x00010000, 0x00400000,
        0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0xbf808000, 0xbf818000, /* bf16 ties */
        0x7f7f8000, 0x7f7f7fff, 0x7f7fffff, 0xff7f8000, 0x7f7effff, 0x7f7f0000, /* bf16 max finite */
        0x3f801000, 0x3f803000, 0x3f800fff, 0x3f801001,                     /* f16 ties at 1 */
        0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0xc77ff000, 0x47800000, /* f16 max / overflow */
        0x38800000, 0x387fffff, 0x38000000, 0x33800000, 0x33000000, 0x33000001, /* f16 subnormals */
        0x32ffffff, 0x33c00000, 0x33a00000, 0x34000000, 0x34400000, 0x387fe000, 0x387ff000,
        0xb3000001, 0xb3000000, 0xb8800000, 0x3f800000, 0xbf800000, 0x3eaaaaab, 0x40490fdb};
    size_t n = 0;
    for (size_t i = 0; i < sizeof bits / sizeof bits[0] && n < cap; i++) v[n++] = ot_bits_f32(bits[i]);
    /* every f16 subnormal/normal boundary tie: midpoints between consecutive f16 values */
    for (uint32_t h = 0; h < 0x7c00 && n + 2 < cap; h += 97) {
        double a = ot_f16_to_f32((uint16_t)h), b = ot_f16_to_f32((uint16_t)(h + 1));
        v[n++] = (float)((a + b) / 2);
        v[n++] = -(float)((a + b) / 2);
    }
    return n;
}

static void narrow_all_lengths(int bf, const float *src, size_t total, uint16_t *dst) {
    narrow_fn fn = bf ? ot_f32_to_bf16_n : ot_f32_to_f16_n;
    narrow_check(bf, fn, src, total, dst);
    for (size_t off = 0; off + 67 < total && off < 200; off += 7)
        for (size_t n = 0; n <= 67; n++) narrow_check(bf, fn, src + off, n, dst + (off & 3));
}

static void test_narrow(int bf) {
    enum { CAP = 8192 };
    float *src = malloc(CAP * sizeof *src);
    uint16_t *dst = malloc((CAP + 8) * sizeof *dst);
    if (!src || !dst) exit(2);
    size_t n = edge_set(src, CAP);
    narrow_all_lengths(bf, src, n, dst);
    for (size_t i = 0; i < CAP; i++) src[i] = ot_bits_f32(next_u32());
    narrow_all_lengths(bf, src, CAP, dst);
    /* values near 1 (most ties fall here in training data) */
    for (size_t i = 0; i < CAP; i++) src[i] = ot_bits_f32(0x3f000000u + (next_u32() & 0x00ffffffu));
    narrow_all_lengths(bf, src, CAP, dst);
    free(src);
    free(dst);
}

/* Strided sweep of all 2^32 f32 patterns, converted in blocks of 4096 (odd offsets, so the
 * block boundaries move relative to the vector width). */
static void test_narrow_sweep(int bf) {
    enum { BLK = 4096 };
    static float src[BLK];
    static uint16_t dst[BLK + 1];
    narrow_fn fn = bf ? ot_f32_to_bf16_n : ot_f32_to_f16_n;
    uint64_t u = 0;
    size_t bad_blocks = 0, blocks = 0;
    while (u < (1ull << 32)) {
        size_t m = 0;
        for (; m < BLK - (blocks % 13) && u < (1ull << 32); m++, u += 4099) src[m] = ot_bits_f32((uint32_t)u);
        fn(dst, src, m);
        for (size_t i = 0; i < m; i++)
            if (dst[i] != want16(bf, src[i])) {
                if (!bad_blocks)
                    fprintf(stderr, "sweep f32->%s: in %08x got %04x want %04x\n", bf ? "bf16" : "f16",
                            ot_f32_bits(src[i]), dst[i], want16(bf, src[i]));
                bad_blocks++;
                break;
            }
        blocks++;
    }
    CHECK(bad_blocks == 0);
}

/* The exactness helper used by the autocast pass. */
static void test_exact_in(void) {
    float v[300];
    for (int i = 0; i < 300; i++) v[i] = (float)(i - 150) * 0.25f;
    CHECK(ot_f32_exact_in(v, 300, OT_BF16));
    CHECK(ot_f32_exact_in(v, 300, OT_F16));
    v[299] = 1.0f + 0x1p-10f; /* exact in f16, not in bf16 */
    CHECK(!ot_f32_exact_in(v, 300, OT_BF16));
    CHECK(ot_f32_exact_in(v, 300, OT_F16));
    v[299] = 70000.0f; /* overflows f16 */
    CHECK(!ot_f32_exact_in(v, 300, OT_F16));
    CHECK(ot_f32_exact_in(v, 0, OT_F16));
}

#define OT_RUN_1(fn, arg)                                     \
    do {                                                      \
        fprintf(stderr, "-- %s(%s)\n", #fn, (arg) ? "bf16" : "f16"); \
        fn(arg);                                              \
    } while (0)

int main(void) {
    int top = ot_lowp_isa();
    fprintf(stderr, "lowp: CPU level %d (0 scalar, 1 avx2+f16c, 2 avx512, 3 avx512+bf16)\n", top);
    for (int level = 0; level <= top; level++) {
        CHECK(ot_lowp_force_isa(level) == level);
        fprintf(stderr, "== level %d\n", level);
        OT_RUN_1(test_widen_all, 1);
        OT_RUN_1(test_widen_all, 0);
        OT_RUN_1(test_narrow, 1);
        OT_RUN_1(test_narrow, 0);
        OT_RUN_1(test_narrow_sweep, 1);
        OT_RUN_1(test_narrow_sweep, 0);
        OT_RUN(test_exact_in);
    }
    ot_lowp_force_isa(-1);
    CHECK(ot_lowp_isa() == top);
    return OT_TEST_EXIT();
}
