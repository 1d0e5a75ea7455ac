/* shape_generators.c — ops that make tensors from shapes and scalars: Shape, ConstantOfShape,
 * Constant, Range, and Trilu (a masked copy of a batch of matrices).
 *
 * Shapes:
 *   Shape           x[d_0..d_{r-1}] -> int64 [end-start] = dims[start:end] (start/end from 15)
 *   ConstantOfShape shape[k] int    -> tensor of `shape` filled with `value` (default f32 0)
 *   Constant        (no input)      -> the attribute's tensor (value, value_float(s), value_int(s))
 *   Range           start, limit, delta scalars -> [max(ceil((limit-start)/delta), 0)]
 *   Trilu           x[.., N, M], k? -> x with elements outside the upper (j-i >= k) or lower
 *                                      (j-i <= k) triangle set to 0
 * The planner usually folds Shape, Constant, ConstantOfShape and Range at plan time by calling
 * these cpu kernels, so they read only what infer already knew: Shape reads input dims,
 * never its data. Range supports f32, f64, i16, i32, i64 (elements are start + i*delta, as
 * the spec writes it); the rest any dtype. Accumulation rule: outputs are written with `=`. */
#include <math.h>
#include <string.h>

#include "shape.h"

/* ---- Shape ---- */

ot_status ot_shape_shapeop_parse(const ot_node *n, int opset, void *attr) {
    ot_shapeop_attr *a = attr;
    a->start = 0;
    a->end = 0;
    a->has_end = 0;
    if (opset >= 15) {
        OT_TRY(ot_attr_int(n, "start", 0, &a->start));
        a->has_end = ot_node_attr(n, "end") != NULL;
        if (a->has_end) OT_TRY(ot_attr_int(n, "end", 0, &a->end));
    }
    return OT_OK;
}

/* dims[*s .. *e) is the slice Shape returns for rank r. */
static void shape_range(const ot_shapeop_attr *a, int r, int *s, int *e) {
    int64_t st = a->start, en = a->has_end ? a->end : r;
    if (st < 0) st += r;
    if (en < 0) en += r;
    st = st < 0 ? 0 : st > r ? r : st;
    en = en < 0 ? 0 : en > r ? r : en;
    *s = (int)st;
    *e = (int)(en > st ? en : st);
}

ot_status ot_shape_shapeop_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    int s, e;
    shape_range(c->attr, c->in[0]->ndim, &s, &e);
    int64_t n = e - s;
    return ot_set_out(c, 0, OT_I64, 1, &n);
}

ot_status ot_shape_shapeop_cpu(ot_op_ctx *c) {
    int s, e;
    shape_range(c->attr, c->in[0]->ndim, &s, &e);
    int64_t *y = c->out[0]->data;
    for (int d = s; d < e; d++) y[d - s] = c->in[0]->dims[d];
    return OT_OK;
}

/* ---- ConstantOfShape ---- */

ot_status ot_shape_cofs_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_cofs_attr *a = attr;
    memset(a, 0, sizeof *a);
    a->dtype = OT_F32; /* value 0.0f: all-zero bytes */
    const ot_attr *v = ot_node_attr(n, "value");
    if (!v) return OT_OK;
    if (v->type != OT_ATTR_TENSOR || !v->t)
        return ot_errorf(OT_E_INVALID, "%s: attribute 'value' must be a tensor", ot_node_name(n));
    size_t es = ot_dtype_size(v->t->dtype);
    if (es == 0 || es > sizeof a->value)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: 'value' of dtype %s is not supported", ot_node_name(n),
                         ot_dtype_name(v->t->dtype));
    if (ot_tensor_numel(v->t) != 1)
        return ot_errorf(OT_E_INVALID, "%s: 'value' must hold exactly one element, got %lld", ot_node_name(n),
                         (long long)ot_tensor_numel(v->t));
    a->dtype = v->t->dtype;
    memcpy(a->value, v->t->data, es);
    return OT_OK;
}

ot_status ot_shape_cofs_infer(ot_op_ctx *c) {
    const ot_cofs_attr *a = c->attr;
    OT_TRY(ot_require_value(c, 0, "input"));
    const ot_tensor *s = c->in[0];
    if (s->ndim != 1)
        return ot_errorf(OT_E_SHAPE, "%s: the shape input must be 1-D, got rank %d", ot_op_label(c), s->ndim);
    int64_t dims[OT_MAX_DIMS];
    int n;
    OT_TRY(ot_read_ints(c, s, dims, OT_MAX_DIMS, &n));
    for (int d = 0; d < n; d++)
        if (dims[d] < 0)
            return ot_errorf(OT_E_SHAPE, "%s: shape[%d] is negative (%lld)", ot_op_label(c), d, (long long)dims[d]);
    return ot_set_out(c, 0, a->dtype, n, dims);
}

ot_status ot_shape_cofs_cpu(ot_op_ctx *c) {
    const ot_cofs_attr *a = c->attr;
    ot_shape_fill(c->out[0]->data, a->value, ot_dtype_size(a->dtype), ot_tensor_numel(c->out[0]));
    return OT_OK;
}

/* ---- Constant ---- */

ot_status ot_shape_constant_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_constant_attr *a = attr;
    memset(a, 0, sizeof *a);
    static const char *const unsupported[] = {"sparse_value", "value_string", "value_strings"};
    for (int k = 0; k < 3; k++)
        if (ot_node_attr(n, unsupported[k]))
            return ot_errorf(OT_E_UNSUPPORTED, "%s: attribute '%s' is not supported (onnxtune stores no %s tensors)",
                             ot_node_name(n), unsupported[k], k == 0 ? "sparse" : "string");
    static const char *const names[] = {"value", "value_float", "value_floats", "value_int", "value_ints"};
    static const ot_attr_type types[] = {OT_ATTR_TENSOR, OT_ATTR_FLOAT, OT_ATTR_FLOATS, OT_ATTR_INT, OT_ATTR_INTS};
    const ot_attr *v = NULL;
    int which = -1;
    for (int k = 0; k < 5; k++) {
        const ot_attr *t = ot_node_attr(n, names[k]);
        if (!t) continue;
        if (v)
            return ot_errorf(OT_E_INVALID, "%s: has both '%s' and '%s'; exactly one value attribute is allowed",
                             ot_node_name(n), names[which], names[k]);
        if (t->type != types[k])
            return ot_errorf(OT_E_INVALID, "%s: attribute '%s' has attribute type %d, expected %d",
                             ot_node_name(n), names[k], (int)t->type, (int)types[k]);
        v = t;
        which = k;
    }
    if (!v)
        return ot_errorf(OT_E_INVALID, "%s: no value attribute (value, value_float(s), value_int(s))",
                         ot_node_name(n));
    switch (which) {
    case 0:
        if (!v->t) return ot_errorf(OT_E_INVALID, "%s: attribute 'value' holds no tensor", ot_node_name(n));
        if (ot_dtype_size(v->t->dtype) == 0)
            return ot_errorf(OT_E_UNSUPPORTED, "%s: 'value' has dtype %s, which onnxtune does not store",
                             ot_node_name(n), ot_dtype_name(v->t->dtype));
        if (v->t->ndim > OT_MAX_DIMS)
            return ot_errorf(OT_E_UNSUPPORTED, "%s: 'value' has rank %d > %d", ot_node_name(n), v->t->ndim,
                             OT_MAX_DIMS);
        a->dtype = v->t->dtype;
        a->ndim = v->t->ndim;
        for (int d = 0; d < a->ndim; d++) a->dims[d] = v->t->dims[d];
        a->data = v->t->data;
        if (!a->data && ot_tensor_numel(v->t) > 0)
            return ot_errorf(OT_E_INVALID, "%s: 'value' tensor has no data", ot_node_name(n));
        break;
    case 1: a->dtype = OT_F32; a->ndim = 0; a->data = &v->f; break;
    case 2: a->dtype = OT_F32; a->ndim = 1; a->dims[0] = v->n; a->data = v->floats; break;
    case 3: a->dtype = OT_I64; a->ndim = 0; a->data = &v->i; break;
    case 4: a->dtype = OT_I64; a->ndim = 1; a->dims[0] = v->n; a->data = v->ints; break;
    }
    return OT_OK;
}

ot_status ot_shape_constant_infer(ot_op_ctx *c) {
    const ot_constant_attr *a = c->attr;
    return ot_set_out(c, 0, a->dtype, a->ndim, a->dims);
}

ot_status ot_shape_constant_cpu(ot_op_ctx *c) {
    const ot_constant_attr *a = c->attr;
    size_t bytes = (size_t)ot_shape_numel(a->ndim, a->dims) * ot_dtype_size(a->dtype);
    if (bytes) ot_shape_memcpy(c->out[0]->data, a->data, bytes);
    return OT_OK;
}

/* ---- Range ---- */

/* Element count for integer operands, exact (no overflow on the difference). */
static int64_t range_count_int(int64_t s, int64_t l, int64_t d) {
    uint64_t diff, step;
    if (d > 0) {
        if (l <= s) return 0;
        diff = (uint64_t)l - (uint64_t)s;
        step = (uint64_t)d;
    } else {
        if (l >= s) return 0;
        diff = (uint64_t)s - (uint64_t)l;
        step = (uint64_t)0 - (uint64_t)d;
    }
    uint64_t n = diff / step + (diff % step != 0);
    return n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

static ot_status range_count(ot_op_ctx *c, int64_t *n) {
    const ot_tensor *s = c->in[0], *l = c->in[1], *d = c->in[2];
    static const char *const names[] = {"start", "limit", "delta"};
    for (int k = 0; k < 3; k++)
        if (ot_tensor_numel(c->in[k]) != 1)
            return ot_errorf(OT_E_SHAPE, "%s: '%s' must be a scalar, got %lld elements", ot_op_label(c), names[k],
                             (long long)ot_tensor_numel(c->in[k]));
    switch (s->dtype) {
    case OT_F32: {
        float fs = *(const float *)s->data, fl = *(const float *)l->data, fd = *(const float *)d->data;
        if (fd == 0.0f) return ot_errorf(OT_E_INVALID, "%s: 'delta' is 0", ot_op_label(c));
        double v = ceil((double)(fl - fs) / (double)fd);
        if (!(v < 9.2e18)) return ot_errorf(OT_E_INVALID, "%s: Range would have %g elements", ot_op_label(c), v);
        *n = v > 0 ? (int64_t)v : 0;
        return OT_OK;
    }
    case OT_F64: {
        double fs = *(const double *)s->data, fl = *(const double *)l->data, fd = *(const double *)d->data;
        if (fd == 0.0) return ot_errorf(OT_E_INVALID, "%s: 'delta' is 0", ot_op_label(c));
        double v = ceil((fl - fs) / fd);
        if (!(v < 9.2e18)) return ot_errorf(OT_E_INVALID, "%s: Range would have %g elements", ot_op_label(c), v);
        *n = v > 0 ? (int64_t)v : 0;
        return OT_OK;
    }
    case OT_I16: case OT_I32: case OT_I64: {
        int64_t is = ot_tensor_get_i64(s, 0), il = ot_tensor_get_i64(l, 0), id = ot_tensor_get_i64(d, 0);
        if (id == 0) return ot_errorf(OT_E_INVALID, "%s: 'delta' is 0", ot_op_label(c));
        *n = range_count_int(is, il, id);
        return OT_OK;
    }
    default:
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported (float32, float64, int16, int32, int64)",
                         ot_op_label(c), ot_dtype_name(s->dtype));
    }
}

ot_status ot_shape_range_infer(ot_op_ctx *c) {
    OT_TRY(ot_require_value(c, 0, "start"));
    OT_TRY(ot_require_value(c, 1, "limit"));
    OT_TRY(ot_require_value(c, 2, "delta"));
    OT_TRY(ot_check_same_dtype(c, 0, 1));
    OT_TRY(ot_check_same_dtype(c, 0, 2));
    int64_t n;
    OT_TRY(range_count(c, &n));
    return ot_set_out(c, 0, c->in[0]->dtype, 1, &n);
}

ot_status ot_shape_range_cpu(ot_op_ctx *c) {
    const ot_tensor *s = c->in[0], *d = c->in[2];
    int64_t n = c->out[0]->dims[0];
    void *y = c->out[0]->data;
    switch (s->dtype) {
    case OT_F32: {
        float fs = *(const float *)s->data, fd = *(const float *)d->data;
        float *o = y;
        for (int64_t i = 0; i < n; i++) o[i] = fs + (float)i * fd;
        break;
    }
    case OT_F64: {
        double fs = *(const double *)s->data, fd = *(const double *)d->data;
        double *o = y;
        for (int64_t i = 0; i < n; i++) o[i] = fs + (double)i * fd;
        break;
    }
    case OT_I16: case OT_I32: case OT_I64: {
        /* unsigned arithmetic: the values stay between start and limit, so no wrap shows */
        uint64_t us = (uint64_t)ot_tensor_get_i64(s, 0), ud = (uint64_t)ot_tensor_get_i64(d, 0);
        if (s->dtype == OT_I64) {
            int64_t *o = y;
            for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(us + (uint64_t)i * ud);
        } else if (s->dtype == OT_I32) {
            int32_t *o = y;
            for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(int64_t)(us + (uint64_t)i * ud);
        } else {
            int16_t *o = y;
            for (int64_t i = 0; i < n; i++) o[i] = (int16_t)(int64_t)(us + (uint64_t)i * ud);
        }
        break;
    }
    default:
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported", ot_op_label(c), ot_dtype_name(s->dtype));
    }
    return OT_OK;
}

/* ---- Trilu ---- */

ot_status ot_shape_trilu_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_trilu_attr *a = attr;
    int64_t u;
    OT_TRY(ot_attr_int(n, "upper", 1, &u));
    a->upper = u != 0;
    return OT_OK;
}

static ot_status trilu_k(ot_op_ctx *c, int64_t *k) {
    *k = 0;
    if (c->n_in < 2 || !c->in[1]) return OT_OK;
    if (ot_tensor_numel(c->in[1]) != 1)
        return ot_errorf(OT_E_SHAPE, "%s: 'k' must be a scalar, got %lld elements", ot_op_label(c),
                         (long long)ot_tensor_numel(c->in[1]));
    if (ot_dtype_is_float(c->in[1]->dtype))
        return ot_errorf(OT_E_SHAPE, "%s: 'k' must be int64, got %s", ot_op_label(c), ot_dtype_name(c->in[1]->dtype));
    *k = ot_tensor_get_i64(c->in[1], 0);
    return OT_OK;
}

ot_status ot_shape_trilu_infer(ot_op_ctx *c) {
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    if (c->n_in > 1 && c->in[1]) OT_TRY(ot_require_value(c, 1, "k"));
    int64_t k;
    OT_TRY(trilu_k(c, &k));
    const ot_tensor *x = c->in[0];
    if (x->ndim < 2) return ot_errorf(OT_E_SHAPE, "%s: input must have rank >= 2, got %d", ot_op_label(c), x->ndim);
    return ot_set_out(c, 0, x->dtype, x->ndim, x->dims);
}

ot_status ot_shape_trilu_cpu(ot_op_ctx *c) {
    const ot_trilu_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    int64_t k;
    OT_TRY(trilu_k(c, &k));
    const int64_t N = x->dims[x->ndim - 2], M = x->dims[x->ndim - 1];
    const int64_t rows = ot_shape_numel(x->ndim - 1, x->dims);
    const size_t es = ot_dtype_size(x->dtype);
    if (k > M + 1) k = M + 1; /* beyond these bounds the masks no longer change */
    if (k < -N - 1) k = -N - 1;
    char *y = c->out[0]->data;
    const char *src = x->data;
    const int upper = a->upper;
    const int par = rows * M * (int64_t)es >= OT_SHAPE_PAR_BYTES;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r % N;
        /* kept columns [lo, hi): upper keeps j >= i+k, lower keeps j <= i+k */
        int64_t lo = upper ? i + k : 0, hi = upper ? M : i + k + 1;
        lo = lo < 0 ? 0 : lo > M ? M : lo;
        hi = hi < lo ? lo : hi > M ? M : hi;
        char *yr = y + (size_t)(r * M) * es;
        const char *xr = src + (size_t)(r * M) * es;
        if (yr != xr) memcpy(yr + lo * (int64_t)es, xr + lo * (int64_t)es, (size_t)(hi - lo) * es);
        memset(yr, 0, (size_t)lo * es);
        memset(yr + hi * (int64_t)es, 0, (size_t)(M - hi) * es);
    }
    return OT_OK;
}
