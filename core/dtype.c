/* dtype.c — dtype sizes, names and conversions; see dtype.h. */
#include "dtype.h"

#include <math.h>
#include <stdio.h>
#include <strings.h>

size_t ot_dtype_size(ot_dtype t) {
    switch (t) {
    case OT_F32: case OT_I32: case OT_U32: return 4;
    case OT_U8: case OT_I8: case OT_BOOL: return 1;
    case OT_U16: case OT_I16: case OT_F16: case OT_BF16: return 2;
    case OT_I64: case OT_F64: case OT_U64: return 8;
    default: return 0;
    }
}

const char *ot_dtype_name(ot_dtype t) {
    switch (t) {
    case OT_F32: return "float32";
    case OT_U8: return "uint8";
    case OT_I8: return "int8";
    case OT_U16: return "uint16";
    case OT_I16: return "int16";
    case OT_I32: return "int32";
    case OT_I64: return "int64";
    case OT_STRING: return "string";
    case OT_BOOL: return "bool";
    case OT_F16: return "float16";
    case OT_F64: return "float64";
    case OT_U32: return "uint32";
    case OT_U64: return "uint64";
    case OT_BF16: return "bfloat16";
    case OT_UNDEFINED: return "undefined";
    }
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, "dtype(%d)", (int)t);
    return buf;
}

ot_dtype ot_dtype_from_name(const char *s) {
    static const struct { const char *name; ot_dtype t; } names[] = {
        {"float32", OT_F32}, {"F32", OT_F32}, {"float16", OT_F16}, {"F16", OT_F16},
        {"bfloat16", OT_BF16}, {"BF16", OT_BF16}, {"float64", OT_F64}, {"F64", OT_F64},
        {"int64", OT_I64}, {"I64", OT_I64}, {"int32", OT_I32}, {"I32", OT_I32},
        {"int16", OT_I16}, {"I16", OT_I16}, {"int8", OT_I8}, {"I8", OT_I8},
        {"uint8", OT_U8}, {"U8", OT_U8}, {"uint16", OT_U16}, {"U16", OT_U16},
        {"uint32", OT_U32}, {"U32", OT_U32}, {"uint64", OT_U64}, {"U64", OT_U64},
        {"bool", OT_BOOL}, {"BOOL", OT_BOOL},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) return names[i].t;
    return OT_UNDEFINED;
}

float ot_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return ot_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return ot_bits_f32(sign);
        float f = ldexpf((float)man, -24); /* subnormal: man * 2^-24, exact in f32 */
        return sign ? -f : f;
    }
    return ot_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ot_f32_to_f16(float f) {
    uint32_t u = ot_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                        /* below the smallest normal 2^-14 */
        if (a < 0x33000000u) return sign;         /* below half the smallest subnormal */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;                  /* 14 + 113 - e - 1 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return sign | (uint16_t)r;
    }
    a += 0xfffu + ((a >> 13) & 1u); /* round to nearest even at bit 13 */
    return sign | (uint16_t)((a - 0x38000000u) >> 13);
}

/* Every dtype goes through double or int64: exact for all integer values up to 2^53 and
 * for every float format; int64 <-> int64 and uint64 take the integer route. */
static double load_f(const void *p, ot_dtype t, size_t i) {
    switch (t) {
    case OT_F32: return ((const float *)p)[i];
    case OT_F64: return ((const double *)p)[i];
    case OT_F16: return ot_f16_to_f32(((const uint16_t *)p)[i]);
    case OT_BF16: return ot_bf16_to_f32(((const uint16_t *)p)[i]);
    case OT_I8: return ((const int8_t *)p)[i];
    case OT_U8: return ((const uint8_t *)p)[i];
    case OT_I16: return ((const int16_t *)p)[i];
    case OT_U16: return ((const uint16_t *)p)[i];
    case OT_I32: return ((const int32_t *)p)[i];
    case OT_U32: return ((const uint32_t *)p)[i];
    case OT_I64: return (double)((const int64_t *)p)[i];
    case OT_U64: return (double)((const uint64_t *)p)[i];
    case OT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static int64_t load_i(const void *p, ot_dtype t, size_t i) {
    switch (t) {
    case OT_I64: return ((const int64_t *)p)[i];
    case OT_U64: return (int64_t)((const uint64_t *)p)[i];
    default: {
        double d = load_f(p, t, i);
        if (isnan(d)) return 0;
        if (d >= 9.2233720368547758e18) return INT64_MAX;
        if (d <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)d; /* truncates toward zero */
    }
    }
}

void ot_convert(void *dst, ot_dtype dt, const void *src, ot_dtype st, size_t n) {
    if (n == 0) return; /* src may be NULL for an empty tensor */
    if (dt == st) {
        memcpy(dst, src, n * ot_dtype_size(dt));
        return;
    }
    if (st == OT_F32 && dt == OT_BF16) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = ot_f32_to_bf16(((const float *)src)[i]);
        return;
    }
    if (st == OT_F32 && dt == OT_F16) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = ot_f32_to_f16(((const float *)src)[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case OT_F32: ((float *)dst)[i] = (float)load_f(src, st, i); break;
        case OT_F64: ((double *)dst)[i] = load_f(src, st, i); break;
        /* f64 -> 16-bit rounds through f32 (double rounding), as ONNX Runtime's Cast does. */
        case OT_F16: ((uint16_t *)dst)[i] = ot_f32_to_f16((float)load_f(src, st, i)); break;
        case OT_BF16: ((uint16_t *)dst)[i] = ot_f32_to_bf16((float)load_f(src, st, i)); break;
        case OT_BOOL: ((uint8_t *)dst)[i] = load_f(src, st, i) != 0 || isnan(load_f(src, st, i)); break;
        case OT_I8: ((int8_t *)dst)[i] = (int8_t)load_i(src, st, i); break;
        case OT_U8: ((uint8_t *)dst)[i] = (uint8_t)load_i(src, st, i); break;
        case OT_I16: ((int16_t *)dst)[i] = (int16_t)load_i(src, st, i); break;
        case OT_U16: ((uint16_t *)dst)[i] = (uint16_t)load_i(src, st, i); break;
        case OT_I32: ((int32_t *)dst)[i] = (int32_t)load_i(src, st, i); break;
        case OT_U32: ((uint32_t *)dst)[i] = (uint32_t)load_i(src, st, i); break;
        case OT_I64: ((int64_t *)dst)[i] = load_i(src, st, i); break;
        case OT_U64: ((uint64_t *)dst)[i] = (uint64_t)load_i(src, st, i); break;
        default: break;
        }
    }
}
