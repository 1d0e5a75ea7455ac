/* lowp.h — bulk conversion between f32 and the 16-bit float types (bf16, f16), the hot loop
 * of mixed precision: kernels that store 16-bit tensors compute in f32 on blocks converted
 * with these. Rounding is to nearest, ties to even; NaN stays NaN; overflow gives ±inf (no
 * saturation, so the fp16 loss scaler sees it). Results are identical to the scalar
 * ot_f32_to_bf16 / ot_f32_to_f16 / ot_bf16_to_f32 / ot_f16_to_f32 of dtype.h for every input;
 * the implementations pick vector instructions at run time where the CPU has them. */
#ifndef OT_LOWP_H
#define OT_LOWP_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

static inline int ot_dtype_is_lowp(ot_dtype t) { return t == OT_BF16 || t == OT_F16; }

void ot_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void ot_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);
void ot_f16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void ot_f32_to_f16_n(uint16_t *dst, const float *src, size_t n);

/* By dtype: `t` is OT_BF16 or OT_F16 (OT_F32 copies). */
void ot_lowp_to_f32_n(float *dst, const void *src, ot_dtype t, size_t n);
void ot_f32_to_lowp_n(void *dst, ot_dtype t, const float *src, size_t n);

/* 1 when every element of src (f32) converts to `t` and back unchanged. */
int ot_f32_exact_in(const float *src, size_t n, ot_dtype t);

#endif
