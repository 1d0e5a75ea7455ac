/* shape_slice.c — Slice (opset 13+: starts, ends, axes?, steps? as inputs).
 *
 * Shapes: x[d_0..d_{r-1}] -> y with, on each listed axis, count = number of i in
 * start, start+step, ... before end, after ONNX's adjustment: negative start/end add d; for
 * step > 0 both clamp to [0, d]; for step < 0 start clamps to [0, d-1] and end to [-1, d-1]
 * (so INT64_MAX / INT64_MIN mean "to the end" either way). Unlisted axes are kept whole.
 * The kernel is the shared strided copy (shape.c) over strides step*stride_x from the first
 * selected element, so contiguous runs become memcpys and negative steps read backwards.
 * starts/ends/axes/steps are values infer needs (constant at plan time). Any dtype.
 * ot_slice_plan_make is also SliceGrad's (grad_tensor.c), so both apply the same clamping.
 * Accumulation rule: y is written with `=`. */
#include <string.h>

#include "shape.h"

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

ot_status ot_slice_plan_make(const ot_op_ctx *c, int first, int r, const int64_t *dims, ot_slice_plan *p) {
    const int ia = first + 2, ist = first + 3; /* the optional axes and steps inputs */
    int64_t starts[OT_MAX_DIMS], ends[OT_MAX_DIMS], axes[OT_MAX_DIMS], steps[OT_MAX_DIMS];
    int ns, ne, na, nst;
    OT_TRY(ot_read_ints(c, c->in[first], starts, OT_MAX_DIMS, &ns));
    OT_TRY(ot_read_ints(c, c->in[first + 1], ends, OT_MAX_DIMS, &ne));
    if (ns != ne)
        return ot_errorf(OT_E_SHAPE, "%s: 'starts' has %d values but 'ends' has %d", ot_op_label(c), ns, ne);
    if (c->n_in > ia && c->in[ia]) {
        OT_TRY(ot_read_ints(c, c->in[ia], axes, OT_MAX_DIMS, &na));
        if (na != ns)
            return ot_errorf(OT_E_SHAPE, "%s: 'axes' has %d values but 'starts' has %d", ot_op_label(c), na, ns);
    } else {
        if (ns > r)
            return ot_errorf(OT_E_SHAPE, "%s: 'starts' has %d values for an input of rank %d", ot_op_label(c), ns, r);
        for (int k = 0; k < ns; k++) axes[k] = k;
    }
    if (c->n_in > ist && c->in[ist]) {
        OT_TRY(ot_read_ints(c, c->in[ist], steps, OT_MAX_DIMS, &nst));
        if (nst != ns)
            return ot_errorf(OT_E_SHAPE, "%s: 'steps' has %d values but 'starts' has %d", ot_op_label(c), nst, ns);
    } else {
        for (int k = 0; k < ns; k++) steps[k] = 1;
    }
    for (int d = 0; d < r; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->count[d] = -1; /* marks "not listed yet" */
    }
    for (int k = 0; k < ns; k++) {
        int a;
        OT_TRY(ot_norm_axis(c, axes[k], r, &a));
        if (p->count[a] >= 0)
            return ot_errorf(OT_E_INVALID, "%s: axis %lld is listed twice in 'axes'", ot_op_label(c),
                             (long long)axes[k]);
        int64_t d = dims[a], st = steps[k], s = starts[k], e = ends[k];
        if (st == 0) return ot_errorf(OT_E_INVALID, "%s: 'steps'[%d] is 0", ot_op_label(c), k);
        if (s < 0) s += d;
        if (e < 0) e += d;
        int64_t n;
        if (st > 0) {
            s = clamp64(s, 0, d);
            e = clamp64(e, 0, d);
            n = e > s ? (e - s - 1) / st + 1 : 0;
        } else {
            s = clamp64(s, 0, d - 1);
            e = clamp64(e, -1, d - 1);
            int64_t m = st == INT64_MIN ? INT64_MAX : -st;
            n = s > e ? (s - e - 1) / m + 1 : 0;
        }
        p->start[a] = n > 0 ? s : 0;
        p->step[a] = st;
        p->count[a] = n;
    }
    for (int d = 0; d < r; d++)
        if (p->count[d] < 0) p->count[d] = dims[d];
    return OT_OK;
}

ot_status ot_shape_slice_infer(ot_op_ctx *c) {
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    OT_TRY(ot_require_value(c, 1, "starts"));
    OT_TRY(ot_require_value(c, 2, "ends"));
    if (c->n_in > 3 && c->in[3]) OT_TRY(ot_require_value(c, 3, "axes"));
    if (c->n_in > 4 && c->in[4]) OT_TRY(ot_require_value(c, 4, "steps"));
    ot_slice_plan p;
    OT_TRY(ot_slice_plan_make(c, 1, c->in[0]->ndim, c->in[0]->dims, &p));
    return ot_set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, p.count);
}

ot_status ot_shape_slice_cpu(ot_op_ctx *c) {
    const ot_tensor *x = c->in[0];
    ot_slice_plan p;
    OT_TRY(ot_slice_plan_make(c, 1, x->ndim, x->dims, &p));
    int r = x->ndim;
    int64_t xs[OT_MAX_DIMS], st[OT_MAX_DIMS], off = 0;
    ot_strides(r, x->dims, xs);
    for (int d = 0; d < r; d++) {
        if (p.count[d] == 0) return OT_OK; /* empty output */
        off += p.start[d] * xs[d];
        st[d] = p.step[d] * xs[d];
    }
    size_t es = ot_dtype_size(x->dtype);
    ot_shape_strided_copy(c->out[0]->data, (const char *)x->data + off * (int64_t)es, es, r, p.count, st);
    return OT_OK;
}
