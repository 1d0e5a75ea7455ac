/* lowp_x86.c — AVX-512 and AVX2+F16C kernels for the bulk f32 <-> bf16/f16 converters
 * (see lowp_x86.h). Every function carries its own target attribute, so the file builds
 * with the project's baseline flags and lowp.c only calls a kernel after
 * __builtin_cpu_supports said the CPU has it.
 *
 * Bit-exactness against dtype.h's scalar functions, lane by lane:
 *  - bf16 -> f32 is a shift; always exact.
 *  - f32 -> bf16, integer kernels: the scalar algorithm (quiet NaN keeping the payload's
 *    top bits, else add 0x7fff + lsb and truncate).
 *  - f32 -> bf16 with vcvtneps2bf16: the instruction rounds to nearest even and quiets NaNs
 *    exactly like the scalar, but treats f32 subnormal inputs as zero; those lanes take the
 *    integer result.
 *  - f16 -> f32 with vcvtph2ps: exact for numbers (f16 subnormals are f32 normals); a
 *    signalling NaN comes back quiet, whereas the scalar keeps the bits, so NaN lanes take
 *    the scalar's sign | 0x7f800000 | man << 13.
 *  - f32 -> f16 with vcvtps2ph, imm 0 (nearest even, not MXCSR): same rounding, overflow to
 *    inf and subnormal results as the scalar; NaN lanes become sign | 0x7e00 (the scalar drops
 *    the payload). MXCSR.DAZ, were anyone to set it, only zeroes f32 subnormals, which round
 *    to ±0 in f16 anyway. */
#include "core/lowp_x86.h"

#include "core/dtype.h"

#if defined(OT_LOWP_X86)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define T512BF __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define T256 __attribute__((target("avx2,f16c")))

/* ---- AVX-512 ------------------------------------------------------------------------- */

static inline __mmask16 tail_mask(size_t n) { return (__mmask16)((1u << n) - 1u); }

T512 void ot_bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(x, 16));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512i x = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src + i));
        _mm512_mask_storeu_epi32(dst + i, k, _mm512_slli_epi32(x, 16));
    }
}

/* 16 lanes of the scalar ot_f32_to_bf16, widened to 32 bits. */
T512 static inline __m512i bf16_round_int(__m512i u) {
    const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_blend_epi32(nan, r, q);
}

T512 void ot_f32_to_bf16_avx512(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512(src + i);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(bf16_round_int(u)));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512i u = _mm512_maskz_loadu_epi32(k, src + i);
        _mm256_mask_storeu_epi16(dst + i, k, _mm512_cvtepi32_epi16(bf16_round_int(u)));
    }
}

T512BF static inline __m256i bf16_round_hw(__m512i u) {
    __m256i hw = (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(u));
    /* subnormal inputs (exponent 0, mantissa != 0): the instruction flushes them */
    __mmask16 sub = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)) &
                    _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x007fffff));
    if (!sub) return hw;
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    return _mm256_mask_blend_epi16(sub, hw, _mm512_cvtepi32_epi16(r));
}

T512BF void ot_f32_to_bf16_avx512bf16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), bf16_round_hw(_mm512_loadu_si512(src + i)));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm256_mask_storeu_epi16(dst + i, k, bf16_round_hw(_mm512_maskz_loadu_epi32(k, src + i)));
    }
}

T512 static inline __m512 f16_widen(__m256i h) {
    __m512 f = _mm512_cvtph_ps(h);
    __m512i x = _mm512_cvtepu16_epi32(h);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fff)),
                                            _mm512_set1_epi32(0x7c00));
    if (!nan) return f;
    __m512i bits = _mm512_or_si512(
        _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0x8000)), 16),
                        _mm512_set1_epi32(0x7f800000)),
        _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0x3ff)), 13));
    return _mm512_mask_blend_ps(nan, f, _mm512_castsi512_ps(bits));
}

T512 void ot_f16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, f16_widen(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, k, f16_widen(_mm256_maskz_loadu_epi16(k, src + i)));
    }
}

T512 static inline __m256i f16_narrow(__m512i u) {
    __m256i h = _mm512_cvtps_ph(_mm512_castsi512_ps(u), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    if (!nan) return h;
    __m512i q = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000)),
                                _mm512_set1_epi32(0x7e00));
    return _mm256_mask_blend_epi16(nan, h, _mm512_cvtepi32_epi16(q));
}

T512 void ot_f32_to_f16_avx512(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(dst + i), f16_narrow(_mm512_loadu_si512(src + i)));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm256_mask_storeu_epi16(dst + i, k, f16_narrow(_mm512_maskz_loadu_epi32(k, src + i)));
    }
}

/* ---- AVX2 + F16C (8 lanes, scalar tails; NaN lanes are patched with the scalar) -------- */

T256 void ot_bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(x, 16));
    }
    for (; i < n; i++) dst[i] = ot_bf16_to_f32(src[i]);
}

T256 void ot_f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
        /* |u| as a signed int is >= 0, so a signed compare finds NaNs */
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
        __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
        r = _mm256_blendv_epi8(r, q, nan);
        /* values are 0..0xffff: unsigned-saturating pack is exact; packs work per 128-bit
         * lane, so gather qwords 0 and 2 */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_castsi256_si128(p));
    }
    for (; i < n; i++) dst[i] = ot_f32_to_bf16(src[i]);
}

T256 void ot_f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
        /* NaN lanes: |h| > 0x7c00 as signed 16-bit (|h| <= 0x7fff) */
        __m128i nan = _mm_cmpgt_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7fff)), _mm_set1_epi16(0x7c00));
        if (_mm_movemask_epi8(nan))
            for (size_t j = i; j < i + 8; j++) dst[j] = ot_f16_to_f32(src[j]);
    }
    for (; i < n; i++) dst[i] = ot_f16_to_f32(src[i]);
}

T256 void ot_f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_castsi256_ps(u), _MM_FROUND_TO_NEAREST_INT));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
        if (_mm256_movemask_epi8(nan))
            for (size_t j = i; j < i + 8; j++) dst[j] = ot_f32_to_f16(src[j]);
    }
    for (; i < n; i++) dst[i] = ot_f32_to_f16(src[i]);
}

#endif
