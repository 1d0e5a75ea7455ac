/* lowp_x86.h — the x86 vector kernels behind core/lowp.h, internal to core/lowp*.c.
 *
 * Each kernel converts n elements and is bit-identical to the scalar functions of dtype.h
 * for every input (tests/unit/test_lowp_convert.c checks all 16-bit patterns and a sweep of
 * f32). The AVX-512 kernels need avx512f+avx512bw+avx512vl (masked tails, no scalar loop);
 * the AVX2 kernels need avx2+f16c and finish with the scalar loop. Callers (lowp.c) pick
 * them at run time with __builtin_cpu_supports; they are only declared on x86-64. */
#ifndef OT_LOWP_X86_H
#define OT_LOWP_X86_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#define OT_LOWP_X86 1

void ot_bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n);
/* Integer round-to-nearest-even (the scalar algorithm, 16 lanes). */
void ot_f32_to_bf16_avx512(uint16_t *dst, const float *src, size_t n);
/* vcvtneps2bf16 plus a fix-up of the lanes it handles differently from the scalar
 * (f32 subnormals, which it flushes to ±0). Needs avx512bf16 as well. */
void ot_f32_to_bf16_avx512bf16(uint16_t *dst, const float *src, size_t n);
/* vcvtph2ps / vcvtps2ph (round to nearest even) plus a NaN fix-up: the scalar keeps an f16
 * NaN's payload bits unchanged on widening and narrows every f32 NaN to sign|0x7e00. */
void ot_f16_to_f32_avx512(float *dst, const uint16_t *src, size_t n);
void ot_f32_to_f16_avx512(uint16_t *dst, const float *src, size_t n);

void ot_bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void ot_f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n);
void ot_f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n);
void ot_f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n);
#endif

/* Which kernels lowp.c uses: 0 scalar, 1 AVX2+F16C, 2 AVX-512, 3 AVX-512 with
 * vcvtneps2bf16. ot_lowp_isa() returns the level in use (detected once);
 * ot_lowp_force_isa(l) caps it at l (-1 restores detection) and returns the level now in
 * use — for tests and benchmarks, not thread-safe against concurrent conversions. */
int ot_lowp_isa(void);
int ot_lowp_force_isa(int level);

#endif
