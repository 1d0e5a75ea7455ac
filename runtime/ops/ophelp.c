/* ophelp.c — see ophelp.h. */
#include "ophelp.h"

#include <string.h>

ot_status ot_norm_axis(const ot_op_ctx *c, int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= (rank > 0 ? rank : 1))
        return ot_errorf(OT_E_INVALID, "%s: axis %lld out of range for rank %d", ot_op_label(c),
                         (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return OT_OK;
}

ot_status ot_set_out(const ot_op_ctx *c, int i, ot_dtype dt, int ndim, const int64_t *dims) {
    if (i >= c->n_out || !c->out[i]) return OT_OK; /* omitted optional output */
    if (ndim < 0 || ndim > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: output rank %d exceeds %d", ot_op_label(c), ndim, OT_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        if (dims[d] < 0)
            return ot_errorf(OT_E_SHAPE, "%s: output %d would have negative dimension %lld", ot_op_label(c), i,
                             (long long)dims[d]);
    ot_tensor *o = c->out[i];
    o->dtype = dt;
    o->ndim = ndim;
    if (ndim) memmove(o->dims, dims, (size_t)ndim * sizeof *dims);
    return OT_OK;
}

ot_status ot_check_input(const ot_op_ctx *c, int i, ot_dtype dt) {
    if (i >= c->n_in || !c->in[i])
        return ot_errorf(OT_E_INVALID, "%s: required input %d is missing", ot_op_label(c), i);
    if (dt != OT_UNDEFINED && c->in[i]->dtype != dt)
        return ot_errorf(OT_E_SHAPE, "%s: input %d must be %s, got %s", ot_op_label(c), i, ot_dtype_name(dt),
                         ot_dtype_name(c->in[i]->dtype));
    return OT_OK;
}

ot_status ot_check_float_input(const ot_op_ctx *c, int i) {
    OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
    ot_dtype t = c->in[i]->dtype;
    if (t != OT_F32 && t != OT_F64)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: input %d dtype %s is not supported (expected float32 or float64)",
                         ot_op_label(c), i, ot_dtype_name(t));
    return OT_OK;
}

ot_status ot_check_float_lowp_input(const ot_op_ctx *c, int i) {
    OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
    ot_dtype t = c->in[i]->dtype;
    if (t != OT_F32 && t != OT_F64 && !ot_dtype_is_lowp(t))
        return ot_errorf(OT_E_UNSUPPORTED,
                         "%s: input %d dtype %s is not supported (expected float32, float64, bfloat16 or float16)",
                         ot_op_label(c), i, ot_dtype_name(t));
    return OT_OK;
}

ot_status ot_check_same_dtype(const ot_op_ctx *c, int a, int b) {
    if (c->in[a]->dtype != c->in[b]->dtype)
        return ot_errorf(OT_E_SHAPE, "%s: inputs %d and %d must have the same dtype, got %s and %s", ot_op_label(c),
                         a, b, ot_dtype_name(c->in[a]->dtype), ot_dtype_name(c->in[b]->dtype));
    return OT_OK;
}

ot_status ot_require_value(const ot_op_ctx *c, int i, const char *what) {
    OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
    if (!c->in[i]->data)
        return ot_errorf(OT_E_UNSUPPORTED,
                         "%s: input '%s' must be computable before the run (a constant once input shapes are "
                         "bound), but it depends on input data",
                         ot_op_label(c), what);
    return OT_OK;
}

ot_status ot_read_ints(const ot_op_ctx *c, const ot_tensor *t, int64_t *dst, int max, int *n) {
    int64_t cnt = ot_tensor_numel(t);
    if (ot_dtype_is_float(t->dtype))
        return ot_errorf(OT_E_SHAPE, "%s: expected an integer tensor, got %s", ot_op_label(c), ot_dtype_name(t->dtype));
    if (cnt > max)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: %lld values where at most %d are supported", ot_op_label(c),
                         (long long)cnt, max);
    for (int64_t k = 0; k < cnt; k++) dst[k] = ot_tensor_get_i64(t, k);
    *n = (int)cnt;
    return OT_OK;
}

ot_status ot_broadcast_shape(const ot_op_ctx *c, int n, const ot_tensor *const *ts, int *ndim, int64_t *dims) {
    int r = 0;
    for (int k = 0; k < n; k++)
        if (ts[k] && ts[k]->ndim > r) r = ts[k]->ndim;
    for (int d = 0; d < r; d++) dims[d] = 1;
    for (int k = 0; k < n; k++) {
        if (!ts[k]) continue;
        int off = r - ts[k]->ndim;
        for (int d = 0; d < ts[k]->ndim; d++) {
            int64_t a = dims[off + d], b = ts[k]->dims[d];
            if (a == b || b == 1) continue;
            if (a == 1) {
                dims[off + d] = b;
                continue;
            }
            char s1[128], s2[128];
            return ot_errorf(OT_E_SHAPE, "%s: shapes cannot be broadcast: input %d is %s, others give %s",
                             ot_op_label(c), k, ot_shape_str(s1, sizeof s1, ts[k]->ndim, ts[k]->dims),
                             ot_shape_str(s2, sizeof s2, r, dims));
        }
    }
    *ndim = r;
    return OT_OK;
}

void ot_strides(int ndim, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = s;
        s *= dims[d];
    }
}

void ot_bcast_init(ot_bcast *b, int n, const ot_tensor *const *ts, int out_ndim, const int64_t *out_dims) {
    memset(b, 0, sizeof *b);
    b->n = n;
    /* Full-rank strides for each operand, 0 where broadcast. */
    int64_t st[OT_BCAST_MAX][OT_MAX_DIMS];
    for (int k = 0; k < n; k++) {
        int64_t own[OT_MAX_DIMS];
        ot_strides(ts[k]->ndim, ts[k]->dims, own);
        int off = out_ndim - ts[k]->ndim;
        for (int d = 0; d < out_ndim; d++) {
            int sd = d - off;
            st[k][d] = (sd < 0 || ts[k]->dims[sd] == 1) ? 0 : own[sd];
        }
    }
    /* Drop size-1 dims, then merge dim d into the previous one when every operand's
     * strides are contiguous across the pair. */
    int m = 0;
    for (int d = 0; d < out_ndim; d++) {
        if (out_dims[d] == 1) continue;
        int merge = m > 0;
        for (int k = 0; k < n && merge; k++)
            merge = st[k][d] * out_dims[d] == b->strides[k][m - 1];
        if (merge) {
            b->dims[m - 1] *= out_dims[d];
            for (int k = 0; k < n; k++) b->strides[k][m - 1] = st[k][d];
        } else {
            b->dims[m] = out_dims[d];
            for (int k = 0; k < n; k++) b->strides[k][m] = st[k][d];
            m++;
        }
    }
    if (m == 0) { /* all dims are 1: a single element */
        b->dims[0] = 1;
        for (int k = 0; k < n; k++) b->strides[k][0] = 0;
        m = 1;
    }
    b->ndim = m;
    b->inner = b->dims[m - 1];
    b->outer = 1;
    for (int d = 0; d < m - 1; d++) b->outer *= b->dims[d];
    for (int k = 0; k < n; k++) b->inner_stride[k] = b->strides[k][m - 1];
    if (ot_shape_numel(out_ndim, out_dims) == 0) b->outer = 0;
}

void ot_bcast_row(const ot_bcast *b, int64_t outer, int64_t *base) {
    for (int k = 0; k < b->n; k++) base[k] = 0;
    for (int d = b->ndim - 2; d >= 0; d--) {
        int64_t i = outer % b->dims[d];
        outer /= b->dims[d];
        for (int k = 0; k < b->n; k++) base[k] += i * b->strides[k][d];
    }
}
