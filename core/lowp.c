/* lowp.c — see lowp.h. The scalar loops here are the reference and the fallback; on x86-64
 * the AVX-512 or AVX2+F16C kernels of lowp_x86.c replace them when the CPU has the
 * instructions (detected once, __builtin_cpu_supports). Every path is bit-identical to
 * dtype.h's scalar functions (tests/unit/test_lowp_convert.c).
 *
 * f32 -> bf16 on AVX-512: the integer kernel (level 2) and the vcvtneps2bf16 kernel with its
 * subnormal fix-up (level 3) measured the same on the Sapphire Rapids dev machine (both
 * memory-bound, see the H1a report), so level 3 only differs in that one kernel. */
#include "core/lowp.h"

#include <string.h>

#include "core/lowp_x86.h"

#if defined(OT_LOWP_X86)
#include <cpuid.h>
#endif

static void bf16_to_f32_scalar(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ot_bf16_to_f32(src[i]);
}
static void f32_to_bf16_scalar(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ot_f32_to_bf16(src[i]);
}
static void f16_to_f32_scalar(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ot_f16_to_f32(src[i]);
}
static void f32_to_f16_scalar(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ot_f32_to_f16(src[i]);
}

/* -1: not detected yet. Stored and loaded atomically: concurrent first calls detect the
 * same value. */
static int detected = -1, forced = -1;

static int detect(void) {
#if defined(OT_LOWP_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return __builtin_cpu_supports("avx512bf16") ? 3 : 2;
    /* clang 14's __builtin_cpu_supports does not know "f16c": ask cpuid (leaf 1, ecx bit
     * 29); the avx2 check already covers the OS saving YMM state. */
    unsigned eax, ebx, ecx, edx;
    if (__builtin_cpu_supports("avx2") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29))) return 1;
#endif
    return 0;
}

int ot_lowp_isa(void) {
    int d = __atomic_load_n(&detected, __ATOMIC_RELAXED);
    if (d < 0) {
        d = detect();
        __atomic_store_n(&detected, d, __ATOMIC_RELAXED);
    }
    int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
    return f >= 0 && f < d ? f : d;
}

int ot_lowp_force_isa(int level) {
    __atomic_store_n(&forced, level, __ATOMIC_RELAXED);
    return ot_lowp_isa();
}

void ot_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n) {
#if defined(OT_LOWP_X86)
    int l = ot_lowp_isa();
    if (l >= 2) {
        ot_bf16_to_f32_avx512(dst, src, n);
        return;
    }
    if (l == 1) {
        ot_bf16_to_f32_avx2(dst, src, n);
        return;
    }
#endif
    bf16_to_f32_scalar(dst, src, n);
}

void ot_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n) {
#if defined(OT_LOWP_X86)
    int l = ot_lowp_isa();
    if (l == 3) {
        ot_f32_to_bf16_avx512bf16(dst, src, n);
        return;
    }
    if (l == 2) {
        ot_f32_to_bf16_avx512(dst, src, n);
        return;
    }
    if (l == 1) {
        ot_f32_to_bf16_avx2(dst, src, n);
        return;
    }
#endif
    f32_to_bf16_scalar(dst, src, n);
}

void ot_f16_to_f32_n(float *dst, const uint16_t *src, size_t n) {
#if defined(OT_LOWP_X86)
    int l = ot_lowp_isa();
    if (l >= 2) {
        ot_f16_to_f32_avx512(dst, src, n);
        return;
    }
    if (l == 1) {
        ot_f16_to_f32_avx2(dst, src, n);
        return;
    }
#endif
    f16_to_f32_scalar(dst, src, n);
}

void ot_f32_to_f16_n(uint16_t *dst, const float *src, size_t n) {
#if defined(OT_LOWP_X86)
    int l = ot_lowp_isa();
    if (l >= 2) {
        ot_f32_to_f16_avx512(dst, src, n);
        return;
    }
    if (l == 1) {
        ot_f32_to_f16_avx2(dst, src, n);
        return;
    }
#endif
    f32_to_f16_scalar(dst, src, n);
}

void ot_lowp_to_f32_n(float *dst, const void *src, ot_dtype t, size_t n) {
    if (t == OT_BF16) ot_bf16_to_f32_n(dst, src, n);
    else if (t == OT_F16) ot_f16_to_f32_n(dst, src, n);
    else if (n) memcpy(dst, src, n * sizeof(float));
}

void ot_f32_to_lowp_n(void *dst, ot_dtype t, const float *src, size_t n) {
    if (t == OT_BF16) ot_f32_to_bf16_n(dst, src, n);
    else if (t == OT_F16) ot_f32_to_f16_n(dst, src, n);
    else if (n) memcpy(dst, src, n * sizeof(float));
}

/* Round trip in blocks through the bulk converters (a stack buffer, no allocation). */
int ot_f32_exact_in(const float *src, size_t n, ot_dtype t) {
    enum { BLK = 256 };
    uint16_t h[BLK];
    float back[BLK];
    for (size_t i = 0; i < n; i += BLK) {
        size_t m = n - i < BLK ? n - i : BLK;
        ot_f32_to_lowp_n(h, t, src + i, m);
        ot_lowp_to_f32_n(back, h, t, m);
        if (memcmp(back, src + i, m * sizeof(float)) != 0) return 0;
    }
    return 1;
}
