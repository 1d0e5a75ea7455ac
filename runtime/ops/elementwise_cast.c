/* elementwise_cast.c — Cast between any two storable dtypes (float32 float64 float16
 * bfloat16 int64 int32 int16 int8 uint64 uint32 uint16 uint8 bool).
 *
 * Shapes: y has x's shape (x may be empty) and dtype `to`. Accumulation rule: y is written
 * with `=`. Semantics are ot_convert's (core/dtype.h): float -> int truncates toward zero
 * and saturates to int64 before narrowing (NaN -> 0; out-of-range values are undefined in
 * ONNX), -> bool is x != 0 (NaN -> true), -> float16/bfloat16 rounds to nearest even.
 * `saturate` (opset 19+) only affects float8 targets, which onnxtune does not store: it is
 * parsed and otherwise ignored; float8 and 4-bit `to` values fail at plan time.
 * The common conversions get direct loops (same results as ot_convert, except that
 * int64 -> float32 rounds once, as C's conversion and ONNX Runtime do, where ot_convert
 * rounds through double). */
#include <string.h>

#include "elementwise.h"

static ot_status cast_parse(const ot_node *n, void *attr, int has_saturate) {
    ot_cast_attr *a = attr;
    const char *name = n->name && n->name[0] ? n->name : "(unnamed)";
    int64_t to;
    OT_TRY(ot_attr_int(n, "to", -1, &to));
    if (to < 0)
        return ot_errorf(OT_E_INVALID, "Cast node '%s': attribute 'to' is required", name);
    if (to > 64 || to == OT_STRING || ot_dtype_size((ot_dtype)to) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "Cast node '%s': cannot cast to %s", name, ot_dtype_name((ot_dtype)to));
    a->to = (ot_dtype)to;
    a->saturate = 1;
    if (has_saturate) {
        int64_t sat;
        OT_TRY(ot_attr_int(n, "saturate", 1, &sat));
        a->saturate = sat != 0;
    }
    return OT_OK;
}

ot_status ot_ew_cast13_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    return cast_parse(n, attr, 0);
}

ot_status ot_ew_cast19_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    return cast_parse(n, attr, 1);
}

static ot_status cast_check(const ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    ot_dtype t = c->in[0]->dtype;
    if (t == OT_STRING || ot_dtype_size(t) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: cannot cast from %s", ot_op_label(c), ot_dtype_name(t));
    return OT_OK;
}

ot_status ot_ew_cast_infer(ot_op_ctx *c) {
    OT_TRY(cast_check(c));
    const ot_cast_attr *a = c->attr;
    return ot_set_out(c, 0, a->to, c->in[0]->ndim, c->in[0]->dims);
}

static inline int64_t f32_to_i64(float a) {
    if (a != a) return 0;
    if (a >= 9.2233720368547758e18f) return INT64_MAX;
    if (a <= -9.2233720368547758e18f) return INT64_MIN;
    return (int64_t)a;
}

OT_EW_SEG1(cast_i64_f32, int64_t, float, (float)a)
OT_EW_SEG1(cast_i32_f32, int32_t, float, (float)a)
OT_EW_SEG1(cast_bool_f32, uint8_t, float, (float)(a != 0))
OT_EW_SEG1(cast_f32_f64, float, double, (double)a)
OT_EW_SEG1(cast_f64_f32, double, float, (float)a)
OT_EW_SEG1(cast_i32_i64, int32_t, int64_t, (int64_t)a)
OT_EW_SEG1(cast_i64_i32, int64_t, int32_t, (int32_t)(uint32_t)(uint64_t)a)
OT_EW_SEG1(cast_f32_i64, float, int64_t, f32_to_i64(a))
OT_EW_SEG1(cast_f32_bool, float, uint8_t, a != 0)
OT_EW_SEG1(cast_i64_bool, int64_t, uint8_t, a != 0)
OT_EW_SEG1(cast_bool_i64, uint8_t, int64_t, a != 0)
OT_EW_SEG1(cast_bf16_f32, uint16_t, float, ot_bf16_to_f32(a))

static const struct {
    ot_dtype from, to;
    ot_ew_fn fn;
} fast[] = {
    {OT_I64, OT_F32, cast_i64_f32},   {OT_I32, OT_F32, cast_i32_f32},   {OT_BOOL, OT_F32, cast_bool_f32},
    {OT_F32, OT_F64, cast_f32_f64},   {OT_F64, OT_F32, cast_f64_f32},   {OT_I32, OT_I64, cast_i32_i64},
    {OT_I64, OT_I32, cast_i64_i32},   {OT_F32, OT_I64, cast_f32_i64},   {OT_F32, OT_BOOL, cast_f32_bool},
    {OT_I64, OT_BOOL, cast_i64_bool}, {OT_BOOL, OT_I64, cast_bool_i64}, {OT_BF16, OT_F32, cast_bf16_f32},
};

/* Everything else: ot_convert on the segment. p is {from, to}. */
static void cast_any(void *y, const void *const *xv, const int64_t *s, int64_t n, const void *p) {
    const ot_dtype *ft = p;
    if (s[0] == 1 || n == 1) {
        ot_convert(y, ft[1], xv[0], ft[0], (size_t)n);
        return;
    }
    size_t ys = ot_dtype_size(ft[1]); /* a broadcast source element (never for a lone input) */
    for (int64_t i = 0; i < n; i++) ot_convert((char *)y + (size_t)i * ys, ft[1], xv[0], ft[0], 1);
}

ot_status ot_ew_cast_cpu(ot_op_ctx *c) {
    OT_TRY(cast_check(c));
    const ot_cast_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    ot_tensor *y = c->out[0];
    if (x->dtype == a->to) {
        if (ot_tensor_nbytes(y)) memcpy(y->data, x->data, ot_tensor_nbytes(y));
        return OT_OK;
    }
    for (size_t k = 0; k < sizeof fast / sizeof fast[0]; k++)
        if (fast[k].from == x->dtype && fast[k].to == a->to) {
            ot_ew_apply(c->in, 1, y, fast[k].fn, NULL, OT_EW_CHEAP);
            return OT_OK;
        }
    const ot_dtype ft[2] = {x->dtype, a->to};
    ot_ew_apply(c->in, 1, y, cast_any, ft, OT_EW_DIV);
    return OT_OK;
}
