/* elementwise.c — the elementwise op family: its registry table, the broadcasting driver
 * every kernel of the family runs under, and the shared shape/dtype inference.
 *
 * Owns: Add Sub Mul Div Pow, Sqrt Reciprocal Neg Abs Exp Log Tanh Erf Sigmoid Relu, Equal
 * Less Greater LessOrEqual GreaterOrEqual, Not And Or, Where, Cast, Max Min, Clip (default
 * domain, opsets 13..21). The ops live in elementwise_{unary,binary,minmax,logic,cast}.c.
 *
 * Shapes: outputs have the numpy (multidirectional) broadcast shape of the inputs; unary ops
 * and Clip keep their input's shape. Any dimension may be 0 (an empty output is a no-op).
 * Accumulation rule: kernels write their outputs with `=`, never accumulate.
 *
 * The driver splits the output into chunks of whole or partial rows of the coalesced
 * broadcast plan (ot_bcast), so same-shape, scalar and row-vector operands end in long
 * contiguous segments; it goes parallel (OpenMP) only above a fixed amount of work so the
 * small int64 shape arithmetic of exported graphs stays single-threaded. */
#include "elementwise.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Work units (elements x cost) per chunk, and the total work above which chunks run in
 * parallel. */
#define EW_CHUNK_WORK 16384
#define EW_MIN_CHUNK 1024
#define EW_PAR_WORK 65536

void ot_ew_apply(const ot_tensor *const *xs, int nx, ot_tensor *y, ot_ew_fn fn, const void *p, int cost) {
    int64_t total = ot_tensor_numel(y);
    if (total <= 0) return;
    ot_bcast b;
    ot_bcast_init(&b, nx, xs, y->ndim, y->dims);
    size_t ysz = ot_dtype_size(y->dtype), xsz[OT_BCAST_MAX];
    for (int k = 0; k < nx; k++) xsz[k] = ot_dtype_size(xs[k]->dtype);
    int64_t chunk = EW_CHUNK_WORK / (cost > 0 ? cost : 1);
    if (chunk < EW_MIN_CHUNK) chunk = EW_MIN_CHUNK;
    int64_t nchunks = (total + chunk - 1) / chunk;
    const ot_bcast *bp = &b;
#pragma omp parallel for schedule(static) if (nchunks > 1 && total * cost > EW_PAR_WORK)
    for (int64_t ci = 0; ci < nchunks; ci++) {
        int64_t pos = ci * chunk, end = pos + chunk < total ? pos + chunk : total;
        int64_t row = pos / bp->inner, j = pos % bp->inner;
        while (pos < end) {
            int64_t base[OT_BCAST_MAX];
            const void *xp[OT_BCAST_MAX];
            ot_bcast_row(bp, row, base);
            int64_t len = bp->inner - j < end - pos ? bp->inner - j : end - pos;
            for (int k = 0; k < nx; k++)
                xp[k] = (const char *)xs[k]->data + (size_t)(base[k] + j * bp->inner_stride[k]) * xsz[k];
            fn((char *)y->data + (size_t)pos * ysz, xp, bp->inner_stride, len, p);
            pos += len;
            row++;
            j = 0;
        }
    }
}

/* ---- 16-bit operands: f32 segment functions on converted blocks ---- */

#define EW_LOWP_BLOCK 256

typedef struct ew_lowp_op {
    ot_ew_fn fn;   /* the op's f32 segment function */
    const void *p; /* its op data */
    int nx;
    ot_dtype xt[OT_BCAST_MAX], yt;
} ew_lowp_op;

static void ew_lowp_seg(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *pv) {
    const ew_lowp_op *op = pv;
    float xb[OT_BCAST_MAX][EW_LOWP_BLOCK], yb[EW_LOWP_BLOCK];
    float x0[OT_BCAST_MAX]; /* broadcast (stride 0) 16-bit operands, converted once */
    for (int k = 0; k < op->nx; k++)
        if (s[k] == 0 && ot_dtype_is_lowp(op->xt[k])) ot_lowp_to_f32_n(&x0[k], xv[k], op->xt[k], 1);
    for (int64_t i0 = 0; i0 < n; i0 += EW_LOWP_BLOCK) {
        const int64_t m = n - i0 < EW_LOWP_BLOCK ? n - i0 : EW_LOWP_BLOCK;
        const void *xp[OT_BCAST_MAX];
        int64_t xs[OT_BCAST_MAX];
        for (int k = 0; k < op->nx; k++) {
            const ot_dtype t = op->xt[k];
            if (!ot_dtype_is_lowp(t)) { /* f32 (or any other dtype the f32 function reads) */
                xp[k] = (const char *)xv[k] + (size_t)(i0 * s[k]) * ot_dtype_size(t);
                xs[k] = s[k];
            } else if (s[k] == 0) {
                xp[k] = &x0[k];
                xs[k] = 0;
            } else {
                const uint16_t *src = (const uint16_t *)xv[k] + i0 * s[k];
                if (s[k] == 1) {
                    ot_lowp_to_f32_n(xb[k], src, t, (size_t)m);
                } else {
                    for (int64_t i = 0; i < m; i++)
                        xb[k][i] = t == OT_BF16 ? ot_bf16_to_f32(src[i * s[k]]) : ot_f16_to_f32(src[i * s[k]]);
                }
                xp[k] = xb[k];
                xs[k] = 1;
            }
        }
        op->fn(yb, xp, xs, m, op->p);
        ot_f32_to_lowp_n((uint16_t *)yv + i0, op->yt, yb, (size_t)m);
    }
}

void ot_ew_apply_lowp(const ot_tensor *const *xs, int nx, ot_tensor *y, ot_ew_fn f32fn, const void *p, int cost) {
    ew_lowp_op op = {.fn = f32fn, .p = p, .nx = nx, .yt = y->dtype};
    for (int k = 0; k < nx; k++) op.xt[k] = xs[k]->dtype;
    ot_ew_apply(xs, nx, y, ew_lowp_seg, &op, cost);
}

void ot_ew_run(const ot_tensor *const *xs, int nx, ot_tensor *y, ot_ew_fn fn, const void *p, int cost) {
    if (ot_dtype_is_lowp(y->dtype)) ot_ew_apply_lowp(xs, nx, y, fn, p, cost);
    else ot_ew_apply(xs, nx, y, fn, p, cost);
}

ot_status ot_ew_mixed_dtype(const ot_op_ctx *c, int i, int j, ot_dtype *lowp) {
    OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, j, OT_UNDEFINED));
    ot_dtype a = c->in[i]->dtype, b = c->in[j]->dtype;
    if ((ot_dtype_is_lowp(a) && (b == a || b == OT_F32)) || (ot_dtype_is_lowp(b) && a == OT_F32)) {
        *lowp = ot_dtype_is_lowp(a) ? a : b;
        return OT_OK;
    }
    return ot_errorf(OT_E_UNSUPPORTED, "%s: mixed-precision %s takes a 16-bit float and a float32 (or the same "
                     "16-bit type), got %s and %s", ot_op_label(c), c->node->op_type, ot_dtype_name(a), ot_dtype_name(b));
}

ot_status ot_ew_check_dtype(const ot_op_ctx *c, int i, const ot_ew_fn *table) {
    ot_dtype t = c->in[i]->dtype;
    if ((int)t >= 0 && (int)t < OT_EW_NDT && table[t]) return OT_OK;
    char list[256];
    size_t k = 0;
    list[0] = 0;
    for (int d = 0; d < OT_EW_NDT && k < sizeof list; d++)
        if (table[d])
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", ot_dtype_name((ot_dtype)d));
    return ot_errorf(OT_E_UNSUPPORTED, "%s: input %d has dtype %s; supported: %s", ot_op_label(c), i,
                     ot_dtype_name(t), list);
}

ot_status ot_ew_infer_unary(ot_op_ctx *c, const ot_ew_fn *table, ot_dtype dt) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    if (table) OT_TRY(ot_ew_check_dtype(c, 0, table));
    const ot_tensor *x = c->in[0];
    return ot_set_out(c, 0, dt == OT_UNDEFINED ? x->dtype : dt, x->ndim, x->dims);
}

ot_status ot_ew_infer_bcast(ot_op_ctx *c, int first, int n, const ot_ew_fn *table, ot_dtype dt) {
    for (int k = first; k < first + n; k++) {
        OT_TRY(ot_check_input(c, k, OT_UNDEFINED));
        if (k > first) OT_TRY(ot_check_same_dtype(c, first, k));
    }
    if (table) OT_TRY(ot_ew_check_dtype(c, first, table));
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    OT_TRY(ot_broadcast_shape(c, n, c->in + first, &ndim, dims));
    return ot_set_out(c, 0, dt == OT_UNDEFINED ? c->in[first]->dtype : dt, ndim, dims);
}

/* One row per (op, opset range). All ops of the family are pure and foldable. */
#define EW_OP(type, fn, lo, hi, nmin, nmax)                                                   \
    {.domain = "", .op_type = type, .since = lo, .until = hi, .min_in = nmin, .max_in = nmax, \
     .infer = ot_ew_##fn##_infer, .cpu = ot_ew_##fn##_cpu}
#define EW_CAST(lo, hi, parse_fn)                                                         \
    {.domain = "", .op_type = "Cast", .since = lo, .until = hi, .min_in = 1, .max_in = 1, \
     .attr_size = sizeof(ot_cast_attr), .parse = parse_fn, .infer = ot_ew_cast_infer, .cpu = ot_ew_cast_cpu}

#define EW_MIXED(type)                                                                                   \
    {.domain = "ai.onnxtune", .op_type = type, .since = 1, .until = 1, .min_in = 2, .max_in = 2, \
     .infer = ot_ew_mixed_infer, .cpu = ot_ew_mixed_cpu}

const ot_op_def ot_ops_elementwise[] = {
    EW_OP("Add", add, 13, 21, 2, 2),
    EW_OP("Sub", sub, 13, 21, 2, 2),
    EW_OP("Mul", mul, 13, 21, 2, 2),
    EW_OP("Div", div, 13, 21, 2, 2),
    EW_OP("Pow", pow, 13, 21, 2, 2),
    EW_OP("Sqrt", sqrt, 13, 21, 1, 1),
    EW_OP("Reciprocal", reciprocal, 13, 21, 1, 1),
    EW_OP("Neg", neg, 13, 21, 1, 1),
    EW_OP("Abs", abs, 13, 21, 1, 1),
    EW_OP("Exp", exp, 13, 21, 1, 1),
    EW_OP("Log", log, 13, 21, 1, 1),
    EW_OP("Tanh", tanh, 13, 21, 1, 1),
    EW_OP("Erf", erf, 13, 21, 1, 1),
    EW_OP("Sigmoid", sigmoid, 13, 21, 1, 1),
    EW_OP("Relu", relu, 13, 21, 1, 1),
    EW_OP("Equal", equal, 13, 21, 2, 2),
    EW_OP("Less", less, 13, 21, 2, 2),
    EW_OP("Greater", greater, 13, 21, 2, 2),
    EW_OP("LessOrEqual", less_equal, 13, 21, 2, 2),
    EW_OP("GreaterOrEqual", greater_equal, 13, 21, 2, 2),
    EW_OP("Not", not, 13, 21, 1, 1),
    EW_OP("And", and, 13, 21, 2, 2),
    EW_OP("Or", or, 13, 21, 2, 2),
    EW_OP("Where", where, 13, 21, 3, 3),
    EW_OP("Max", max, 13, 21, 1, -1),
    EW_OP("Min", min, 13, 21, 1, -1),
    EW_OP("Clip", clip, 13, 21, 1, 3),
    /* Cast gained `saturate` at opset 19. */
    EW_CAST(13, 18, ot_ew_cast13_parse),
    EW_CAST(19, 21, ot_ew_cast19_parse),
    /* mixed precision variants the autocast pass switches to (runtime/autocast.h) */
    EW_MIXED("Add"),
    EW_MIXED("Sub"),
    EW_MIXED("Mul"),
    EW_MIXED("Div"),
    {.domain = "ai.onnxtune", .op_type = "Where", .since = 1, .until = 1, .min_in = 3, .max_in = 3,
     .infer = ot_ew_where_mixed_infer, .cpu = ot_ew_where_mixed_cpu},
};

const int ot_ops_elementwise_count = (int)(sizeof ot_ops_elementwise / sizeof ot_ops_elementwise[0]);
