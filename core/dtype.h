/* dtype.h — element types and 16-bit float conversion.
 *
 * ot_dtype values are ONNX TensorProto.DataType numbers, so a dtype read from a file needs
 * no mapping. fp32 -> f16/bf16 rounds to nearest, ties to even; NaN stays NaN (quiet). */
#ifndef OT_DTYPE_H
#define OT_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    OT_UNDEFINED = 0,
    OT_F32 = 1,
    OT_U8 = 2,
    OT_I8 = 3,
    OT_U16 = 4,
    OT_I16 = 5,
    OT_I32 = 6,
    OT_I64 = 7,
    OT_STRING = 8, /* recognised so errors can name it; never stored */
    OT_BOOL = 9,
    OT_F16 = 10,
    OT_F64 = 11,
    OT_U32 = 12,
    OT_U64 = 13,
    OT_BF16 = 16,
} ot_dtype;

/* Bytes per element; 0 for types onnxtune does not store (string, complex, 4-bit). */
size_t ot_dtype_size(ot_dtype t);
/* "float32", "int64", ...; "dtype(N)" style names are returned for unknown codes. */
const char *ot_dtype_name(ot_dtype t);
/* Parses names as used in .npy descr / safetensors ("F32", "<f4", "float32"); OT_UNDEFINED if unknown. */
ot_dtype ot_dtype_from_name(const char *name);
static inline int ot_dtype_is_float(ot_dtype t) {
    return t == OT_F32 || t == OT_F64 || t == OT_F16 || t == OT_BF16;
}

static inline uint32_t ot_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float ot_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float ot_bf16_to_f32(uint16_t h) { return ot_bits_f32((uint32_t)h << 16); }
static inline uint16_t ot_f32_to_bf16(float f) {
    uint32_t u = ot_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float ot_f16_to_f32(uint16_t h);
uint16_t ot_f32_to_f16(float f);

/* Converts n elements between any two numeric dtypes (ONNX Cast semantics: float -> int
 * truncates toward zero, -> bool is x != 0, NaN -> bool is true). Buffers must not overlap. */
void ot_convert(void *dst, ot_dtype dt, const void *src, ot_dtype st, size_t n);

#endif
