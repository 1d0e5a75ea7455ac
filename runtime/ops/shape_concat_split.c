/* shape_concat_split.c — Concat and Split, the two directions of one copy pattern.
 *
 * Shapes: Concat x_k[.., a_k, ..] (same rank and dtype, equal except on `axis`) ->
 * y[.., sum a_k, ..]; Split x[.., a, ..] -> y_j[.., s_j, ..] with sizes from `split` (an
 * attribute at opsets 11-12, an input from 13), from num_outputs (opset 18+: ceil(a/n) each,
 * the last chunk smaller), or equal parts. Both view the tensor as [outer, axis*inner] rows
 * and move one memcpy per (outer row, piece); empty pieces are skipped. Concat follows the
 * spec strictly: an empty input must still have the common rank and matching dims off the
 * axis (ONNX Runtime rejects other ranks too). Split sizes are values infer needs (constant at
 * plan time). Any dtype. Accumulation rule: outputs are written with `=`. */
#include <stdlib.h>

#include "shape.h"

/* Copies n_pieces pieces per outer row: piece k of row o moves `len[k]` bytes between
 * big + o*row + off[k] and small[k] + o*len[k]. to_big: Concat direction. */
static void move_pieces(char *big, char *const *small, const int64_t *len, const int64_t *off, int n_pieces,
                        int64_t outer, int64_t row, int to_big) {
    if (outer == 1) { /* few big copies: let each split across threads */
        for (int k = 0; k < n_pieces; k++) {
            if (!len[k] || !small[k]) continue;
            if (to_big) ot_shape_memcpy(big + off[k], small[k], (size_t)len[k]);
            else ot_shape_memcpy(small[k], big + off[k], (size_t)len[k]);
        }
        return;
    }
    int par = outer * row >= OT_SHAPE_PAR_BYTES;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < outer; o++) {
        for (int k = 0; k < n_pieces; k++) {
            if (!len[k] || !small[k]) continue;
            char *b = big + o * row + off[k], *s = small[k] + o * len[k];
            if (to_big) memcpy(b, s, (size_t)len[k]);
            else memcpy(s, b, (size_t)len[k]);
        }
    }
}

/* ---- Concat ---- */

ot_status ot_shape_concat_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_concat_attr *a = attr;
    if (!ot_node_attr(n, "axis"))
        return ot_errorf(OT_E_INVALID, "%s: required attribute 'axis' is missing", ot_node_name(n));
    return ot_attr_int(n, "axis", 0, &a->axis);
}

ot_status ot_shape_concat_infer(ot_op_ctx *c) {
    const ot_concat_attr *a = c->attr;
    if (c->n_in < 1) return ot_errorf(OT_E_INVALID, "%s: needs at least one input", ot_op_label(c));
    for (int k = 0; k < c->n_in; k++) OT_TRY(ot_check_input(c, k, OT_UNDEFINED));
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    const int ref = 0;
    const ot_tensor *r = c->in[ref];
    if (r->ndim == 0) return ot_errorf(OT_E_SHAPE, "%s: cannot concatenate scalars", ot_op_label(c));
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, r->ndim, &axis));
    int64_t dims[OT_MAX_DIMS];
    for (int d = 0; d < r->ndim; d++) dims[d] = r->dims[d];
    dims[axis] = 0;
    for (int k = 0; k < c->n_in; k++) {
        const ot_tensor *t = c->in[k];
        if (t->dtype != r->dtype) OT_TRY(ot_check_same_dtype(c, ref, k));
        char b1[160], b2[160];
        if (t->ndim != r->ndim)
            return ot_errorf(OT_E_SHAPE, "%s: input %d has rank %d, expected %d like input 0", ot_op_label(c), k,
                             t->ndim, r->ndim);
        for (int d = 0; d < r->ndim; d++)
            if (d != axis && t->dims[d] != r->dims[d])
                return ot_errorf(OT_E_SHAPE,
                                 "%s: input %d has shape %s, input 0 has %s; they may differ only on axis %d",
                                 ot_op_label(c), k, ot_shape_str(b1, sizeof b1, t->ndim, t->dims),
                                 ot_shape_str(b2, sizeof b2, r->ndim, r->dims), axis);
        dims[axis] += t->dims[axis];
    }
    return ot_set_out(c, 0, r->dtype, r->ndim, dims);
}

ot_status ot_shape_concat_cpu(ot_op_ctx *c) {
    const ot_concat_attr *a = c->attr;
    ot_tensor *y = c->out[0];
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, y->ndim, &axis));
    size_t es = ot_dtype_size(y->dtype);
    int64_t outer = ot_shape_numel(axis, y->dims);
    int64_t inner = ot_shape_numel(y->ndim - axis - 1, y->dims + axis + 1) * (int64_t)es;
    if (ot_tensor_numel(y) == 0) return OT_OK;
    char **small = malloc(sizeof(char *) * (size_t)c->n_in);
    int64_t *len = malloc(sizeof(int64_t) * (size_t)c->n_in), *off = malloc(sizeof(int64_t) * (size_t)c->n_in);
    if (!small || !len || !off) {
        free(small), free(len), free(off);
        return ot_errorf(OT_E_NOMEM, "%s: out of memory", ot_op_label(c));
    }
    int64_t pos = 0;
    for (int k = 0; k < c->n_in; k++) {
        small[k] = (char *)c->in[k]->data;
        len[k] = c->in[k]->dims[axis] * inner;
        off[k] = pos;
        pos += len[k];
    }
    move_pieces(y->data, small, len, off, c->n_in, outer, pos, 1);
    free(small), free(len), free(off);
    return OT_OK;
}

/* ---- Split ---- */

ot_status ot_shape_split_parse(const ot_node *n, int opset, void *attr) {
    ot_split_attr *a = attr;
    OT_TRY(ot_attr_int(n, "axis", 0, &a->axis));
    a->num_outputs = 0;
    if (opset >= 18) OT_TRY(ot_attr_int(n, "num_outputs", 0, &a->num_outputs));
    if (a->num_outputs < 0 || (opset >= 18 && ot_node_attr(n, "num_outputs") && a->num_outputs == 0))
        return ot_errorf(OT_E_INVALID, "%s: 'num_outputs' must be positive, got %lld", ot_node_name(n),
                         (long long)a->num_outputs);
    return OT_OK;
}

/* Sizes of the n_out pieces along the (normalised) axis into sizes[] (caller allocates). */
static ot_status split_sizes(ot_op_ctx *c, int axis, int64_t *sizes) {
    const ot_split_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    int64_t dim = x->dims[axis];
    int n = c->n_out;
    const ot_tensor *s = c->n_in > 1 ? c->in[1] : NULL;
    if (s) {
        if (a->num_outputs)
            return ot_errorf(OT_E_INVALID, "%s: give either the 'split' input or 'num_outputs', not both",
                             ot_op_label(c));
        if (ot_dtype_is_float(s->dtype))
            return ot_errorf(OT_E_SHAPE, "%s: 'split' must be int64, got %s", ot_op_label(c), ot_dtype_name(s->dtype));
        int64_t count = ot_tensor_numel(s);
        if (count != n)
            return ot_errorf(OT_E_SHAPE, "%s: 'split' has %lld sizes for %d outputs", ot_op_label(c), (long long)count,
                             n);
        int64_t sum = 0;
        for (int j = 0; j < n; j++) {
            sizes[j] = ot_tensor_get_i64(s, j);
            if (sizes[j] < 0)
                return ot_errorf(OT_E_SHAPE, "%s: 'split'[%d] is negative (%lld)", ot_op_label(c), j,
                                 (long long)sizes[j]);
            sum += sizes[j];
        }
        if (sum != dim)
            return ot_errorf(OT_E_SHAPE, "%s: 'split' sizes add up to %lld but axis %d has size %lld", ot_op_label(c),
                             (long long)sum, axis, (long long)dim);
        return OT_OK;
    }
    if (a->num_outputs) {
        if (a->num_outputs != n)
            return ot_errorf(OT_E_INVALID, "%s: num_outputs is %lld but the node has %d outputs", ot_op_label(c),
                             (long long)a->num_outputs, n);
        int64_t chunk = (dim + n - 1) / n, last = dim - chunk * (n - 1);
        if (last < 0)
            return ot_errorf(OT_E_SHAPE, "%s: axis %d of size %lld cannot be split into %d chunks of %lld",
                             ot_op_label(c), axis, (long long)dim, n, (long long)chunk);
        for (int j = 0; j < n; j++) sizes[j] = j < n - 1 ? chunk : last;
        return OT_OK;
    }
    if (dim % n != 0)
        return ot_errorf(OT_E_SHAPE, "%s: axis %d of size %lld does not split evenly into %d outputs", ot_op_label(c),
                         axis, (long long)dim, n);
    for (int j = 0; j < n; j++) sizes[j] = dim / n;
    return OT_OK;
}

ot_status ot_shape_split_infer(ot_op_ctx *c) {
    const ot_split_attr *a = c->attr;
    size_t es;
    OT_TRY(ot_shape_esize(c, 0, &es));
    if (c->n_in > 1 && c->in[1]) OT_TRY(ot_require_value(c, 1, "split"));
    if (c->n_out < 1) return ot_errorf(OT_E_INVALID, "%s: needs at least one output", ot_op_label(c));
    const ot_tensor *x = c->in[0];
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, &axis));
    int64_t *sizes = malloc(sizeof(int64_t) * (size_t)c->n_out);
    if (!sizes) return ot_errorf(OT_E_NOMEM, "%s: out of memory", ot_op_label(c));
    ot_status st = split_sizes(c, axis, sizes);
    int64_t dims[OT_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) dims[d] = x->dims[d];
    for (int j = 0; j < c->n_out && st == OT_OK; j++) {
        dims[axis] = sizes[j];
        st = ot_set_out(c, j, x->dtype, x->ndim, dims);
    }
    free(sizes);
    return st;
}

ot_status ot_shape_split_cpu(ot_op_ctx *c) {
    const ot_split_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    int axis;
    OT_TRY(ot_norm_axis(c, a->axis, x->ndim, &axis));
    size_t es = ot_dtype_size(x->dtype);
    int n = c->n_out;
    int64_t outer = ot_shape_numel(axis, x->dims);
    int64_t inner = ot_shape_numel(x->ndim - axis - 1, x->dims + axis + 1) * (int64_t)es;
    if (ot_tensor_numel(x) == 0) return OT_OK;
    char **small = malloc(sizeof(char *) * (size_t)n);
    int64_t *len = malloc(sizeof(int64_t) * (size_t)n), *off = malloc(sizeof(int64_t) * (size_t)n);
    ot_status st = OT_OK;
    if (!small || !len || !off) st = ot_errorf(OT_E_NOMEM, "%s: out of memory", ot_op_label(c));
    if (st == OT_OK) st = split_sizes(c, axis, len); /* sizes first, turned into bytes below */
    if (st == OT_OK) {
        int64_t pos = 0;
        for (int j = 0; j < n; j++) {
            small[j] = c->out[j] ? (char *)c->out[j]->data : NULL;
            len[j] *= inner;
            off[j] = pos;
            pos += len[j];
        }
        move_pieces((char *)x->data, small, len, off, n, outer, pos, 0);
    }
    free(small), free(len), free(off);
    return st;
}
