/* shape.c — the shape op family's registry table and the copy engines its kernels share.
 *
 * Owns: the table ot_ops_shape (one entry per op and opset range where the ONNX signature
 * changed), and the helpers declared in shape.h: a threaded memcpy, an element fill, and the
 * strided-copy engine behind Transpose, Slice and Expand. The engine writes a contiguous
 * output from any strided view of a contiguous input (strides in elements, 0 = broadcast,
 * negative = reversed) and never reads outside the view. Accumulation rule for the whole
 * family: kernels write their outputs with `=`, never `+=`. */
#include "shape.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------------------------------ */
/* The table. Views (output 0 has input 0's bytes) carry OT_OP_VIEW; inputs whose values infer
 * needs are in value_inputs (bit i = input i). */

#define BIT(i) (1u << (i))

/* Designated initializers, so fields added to ot_op_def later (cuda, grad) default to NULL.
 * OPA: an op with a typed attribute struct and a parse; OPN: an op without attributes. */
#define OP_COMMON(NAME, SINCE, UNTIL, MIN_IN, MAX_IN, STEM, VALUE_INPUTS, FLAGS)                     \
    .domain = "", .op_type = NAME, .since = SINCE, .until = UNTIL, .min_in = MIN_IN, .max_in = MAX_IN, \
    .infer = ot_shape_##STEM##_infer, .cpu = ot_shape_##STEM##_cpu, .value_inputs = VALUE_INPUTS, .flags = FLAGS
#define OPA(NAME, SINCE, UNTIL, MIN_IN, MAX_IN, STEM, ATTR, VALUE_INPUTS, FLAGS)                       \
    {OP_COMMON(NAME, SINCE, UNTIL, MIN_IN, MAX_IN, STEM, VALUE_INPUTS, FLAGS), .attr_size = sizeof(ATTR), \
     .parse = ot_shape_##STEM##_parse}
#define OPN(NAME, SINCE, UNTIL, MIN_IN, MAX_IN, STEM, VALUE_INPUTS, FLAGS) \
    {OP_COMMON(NAME, SINCE, UNTIL, MIN_IN, MAX_IN, STEM, VALUE_INPUTS, FLAGS)}

const ot_op_def ot_ops_shape[] = {
    /*  op                since until in  in   stem       attribute struct   value_inputs  flags */
    OPA("Reshape",         13, 13, 2, 2,  reshape,   ot_reshape_attr,   BIT(1),        OT_OP_VIEW),
    OPA("Reshape",         14, 21, 2, 2,  reshape,   ot_reshape_attr,   BIT(1),        OT_OP_VIEW),
    OPA("Flatten",         13, 21, 1, 1,  flatten,   ot_flatten_attr,   0,             OT_OP_VIEW),
    OPN("Squeeze",         13, 21, 1, 2,  squeeze,                      BIT(1),        OT_OP_VIEW),
    OPN("Unsqueeze",       13, 21, 2, 2,  unsqueeze,                    BIT(1),        OT_OP_VIEW),
    OPN("Identity",        13, 21, 1, 1,  identity,                     0,             OT_OP_VIEW),
    /* A view only when its mask output is absent: the planner runs the kernel otherwise. */
    OPN("Dropout",         13, 21, 1, 3,  dropout,                      BIT(2),        OT_OP_VIEW),
    OPA("Transpose",       13, 21, 1, 1,  transpose, ot_transpose_attr, 0,             0),
    OPA("Concat",          13, 21, 1, -1, concat,    ot_concat_attr,    0,             0),
    OPA("Split",           13, 17, 1, 2,  split,     ot_split_attr,     BIT(1),        0),
    OPA("Split",           18, 21, 1, 2,  split,     ot_split_attr,     BIT(1),        0),
    OPN("Slice",           13, 21, 3, 5,  slice,          BIT(1) | BIT(2) | BIT(3) | BIT(4), 0),
    OPA("Gather",          13, 21, 2, 2,  gather,    ot_gather_attr,    0,             0),
    OPN("Expand",          13, 21, 2, 2,  expand,                       BIT(1),        0),
    OPA("Shape",           13, 14, 1, 1,  shapeop,   ot_shapeop_attr,   0,             OT_OP_SHAPE_ONLY),
    OPA("Shape",           15, 21, 1, 1,  shapeop,   ot_shapeop_attr,   0,             OT_OP_SHAPE_ONLY),
    OPA("ConstantOfShape", 13, 21, 1, 1,  cofs,      ot_cofs_attr,      BIT(0),        0),
    OPA("Constant",        13, 21, 0, 0,  constant,  ot_constant_attr,  0,             0),
    OPN("Range",           13, 21, 3, 3,  range,                        BIT(0) | BIT(1) | BIT(2), 0),
    OPA("Trilu",           14, 21, 1, 2,  trilu,     ot_trilu_attr,     BIT(1),        0),
    OPA("CumSum",          13, 21, 2, 2,  cumsum,    ot_cumsum_attr,    BIT(1),        0),
};
const int ot_ops_shape_count = (int)(sizeof ot_ops_shape / sizeof ot_ops_shape[0]);

/* ------------------------------------------------------------------------------------------ */
/* Small helpers. */

ot_status ot_shape_esize(const ot_op_ctx *c, int i, size_t *es) {
    OT_TRY(ot_check_input(c, i, OT_UNDEFINED));
    *es = ot_dtype_size(c->in[i]->dtype);
    if (*es == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: input %d has dtype %s, which onnxtune does not store",
                         ot_op_label(c), i, ot_dtype_name(c->in[i]->dtype));
    return OT_OK;
}

/* This thread's share [*b, *e) of n items inside a parallel region (all of it outside one). */
static void thread_range(int64_t n, int64_t *b, int64_t *e) {
#ifdef _OPENMP
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int64_t nt = 1, t = 0;
#endif
    *b = n / nt * t + (t < n % nt ? t : n % nt);
    *e = *b + n / nt + (t < n % nt ? 1 : 0);
}

void ot_shape_memcpy(void *dst, const void *src, size_t n) {
    if (dst == src || n == 0) return;
    const size_t chunk = (size_t)1 << 20;
    if (n < 4 * chunk) {
        memcpy(dst, src, n);
        return;
    }
    int64_t nchunks = (int64_t)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nchunks; k++) {
        size_t off = (size_t)k * chunk, len = n - off < chunk ? n - off : chunk;
        memcpy((char *)dst + off, (const char *)src + off, len);
    }
}

#define OT_SHAPE_TILE 32 /* elements per side of a transpose tile */

/* Element copies of a fixed size go through memcpy with a constant length, which compiles to
 * one load and one store and stays clear of strict-aliasing trouble. */
#define OT_SHAPE_ROW_FNS(ES)                                                                     \
    static void fill_##ES(char *restrict d, const char *restrict v, int64_t n) {                \
        for (int64_t i = 0; i < n; i++) memcpy(d + i * ES, v, ES);                               \
    }                                                                                            \
    static void gather_##ES(char *restrict d, const char *restrict s, int64_t n, int64_t st) {  \
        for (int64_t i = 0; i < n; i++) memcpy(d + i * ES, s + i * st * ES, ES);                 \
    }                                                                                            \
    /* d[a*dst_a + b] = s[a + b*src_b], a < na, b < nb <= OT_SHAPE_TILE: one tile of a 2-D   \
     * transpose, staged through a stack buffer so that every input run and every output run  \
     * is touched once, contiguously (large power-of-two strides would otherwise make the     \
     * tile's lines evict each other from cache). */                                           \
    static void tile_##ES(char *restrict d, const char *restrict s, int64_t na, int64_t nb,     \
                          int64_t dst_a, int64_t src_b) {                                        \
        unsigned char buf[OT_SHAPE_TILE * OT_SHAPE_TILE * ES];                                   \
        for (int64_t b = 0; b < nb; b++)                                                         \
            memcpy(buf + b * OT_SHAPE_TILE * ES, s + b * src_b * ES, (size_t)na * ES);           \
        for (int64_t a = 0; a < na; a++)                                                         \
            for (int64_t b = 0; b < nb; b++)                                                     \
                memcpy(d + (a * dst_a + b) * ES, buf + (b * OT_SHAPE_TILE + a) * ES, ES);         \
    }
OT_SHAPE_ROW_FNS(1)
OT_SHAPE_ROW_FNS(2)
OT_SHAPE_ROW_FNS(4)
OT_SHAPE_ROW_FNS(8)

static void fill_any(char *d, const char *v, size_t es, int64_t n) {
    switch (es) {
    case 1: fill_1(d, v, n); return;
    case 2: fill_2(d, v, n); return;
    case 4: fill_4(d, v, n); return;
    case 8: fill_8(d, v, n); return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * es, v, es);
}

void ot_shape_fill(void *dst, const void *val, size_t es, int64_t n) {
    if (n <= 0) return;
    int64_t bytes = n * (int64_t)es;
    if (bytes < 4 * OT_SHAPE_PAR_BYTES) {
        fill_any(dst, val, es, n);
        return;
    }
#pragma omp parallel
    {
        int64_t b, e;
        thread_range(n, &b, &e);
        if (b < e) fill_any((char *)dst + (size_t)b * es, val, es, e - b);
    }
}

/* One output row of `n` elements from src with element stride st (0: broadcast). */
static void copy_row(char *d, const char *s, size_t es, int64_t n, int64_t st) {
    if (st == 1) {
        memcpy(d, s, (size_t)n * es);
        return;
    }
    if (st == 0) {
        fill_any(d, s, es, n);
        return;
    }
    switch (es) {
    case 1: gather_1(d, s, n, st); return;
    case 2: gather_2(d, s, n, st); return;
    case 4: gather_4(d, s, n, st); return;
    case 8: gather_8(d, s, n, st); return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * es, s + (ptrdiff_t)(i * st) * (ptrdiff_t)es, es);
}

static void copy_tile(char *d, const char *s, size_t es, int64_t na, int64_t nb, int64_t dst_a, int64_t src_b) {
    switch (es) {
    case 1: tile_1(d, s, na, nb, dst_a, src_b); return;
    case 2: tile_2(d, s, na, nb, dst_a, src_b); return;
    case 4: tile_4(d, s, na, nb, dst_a, src_b); return;
    case 8: tile_8(d, s, na, nb, dst_a, src_b); return;
    }
    for (int64_t a = 0; a < na; a++)
        for (int64_t b = 0; b < nb; b++)
            memcpy(d + (ptrdiff_t)(a * dst_a + b) * (ptrdiff_t)es, s + (ptrdiff_t)(a + b * src_b) * (ptrdiff_t)es,
                   es);
}

/* Tiled path: output dim q reads input stride 1, the output's last dim reads stride st[m-1]. */
static void strided_tiles(char *o, const char *s, size_t es, int m, const int64_t *dims, const int64_t *st,
                          int q) {
    int64_t os[OT_MAX_DIMS];
    ot_strides(m, dims, os);
    int odims[OT_MAX_DIMS], no = 0; /* the outer dims: all but q and m-1 */
    int64_t nouter = 1;
    for (int d = 0; d < m - 1; d++)
        if (d != q) {
            odims[no++] = d;
            nouter *= dims[d];
        }
    const int64_t A = dims[q], B = dims[m - 1], T = OT_SHAPE_TILE;
    const int64_t ta = (A + T - 1) / T, tb = (B + T - 1) / T, ntiles = nouter * ta * tb;
    const int64_t src_b = st[m - 1], dst_a = os[q];
    const ptrdiff_t pes = (ptrdiff_t)es;
    int par = nouter * A * B * (int64_t)es >= OT_SHAPE_PAR_BYTES;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t jb = t % tb, ja = (t / tb) % ta, ou = t / (ta * tb);
        int64_t ioff = 0, ooff = 0;
        for (int k = no - 1; k >= 0; k--) {
            int d = odims[k];
            int64_t i = ou % dims[d];
            ou /= dims[d];
            ioff += i * st[d];
            ooff += i * os[d];
        }
        int64_t a0 = ja * T, b0 = jb * T;
        int64_t na = A - a0 < T ? A - a0 : T, nb = B - b0 < T ? B - b0 : T;
        copy_tile(o + (ptrdiff_t)(ooff + a0 * dst_a + b0) * pes, s + (ptrdiff_t)(ioff + a0 + b0 * src_b) * pes, es,
                  na, nb, dst_a, src_b);
    }
}

void ot_shape_strided_copy(void *dst, const void *src, size_t es, int n, const int64_t *dims_in,
                           const int64_t *st_in) {
    int64_t dims[OT_MAX_DIMS], st[OT_MAX_DIMS];
    int m = 0;
    for (int d = 0; d < n; d++) {
        if (dims_in[d] == 0) return;
        if (dims_in[d] == 1) continue;
        if (m > 0 && st[m - 1] == dims_in[d] * st_in[d]) {
            dims[m - 1] *= dims_in[d];
            st[m - 1] = st_in[d];
        } else {
            dims[m] = dims_in[d];
            st[m] = st_in[d];
            m++;
        }
    }
    char *o = dst;
    const char *s = src;
    if (m == 0) {
        memcpy(o, s, es);
        return;
    }
    const int64_t inner = dims[m - 1], ist = st[m - 1];
    if (ist != 0 && ist != 1 && inner >= 4) {
        int q = -1;
        for (int d = m - 2; d >= 0; d--)
            if (st[d] == 1) {
                q = d;
                break;
            }
        if (q >= 0 && dims[q] >= 4) {
            strided_tiles(o, s, es, m, dims, st, q);
            return;
        }
    }
    int64_t rows = 1;
    for (int d = 0; d < m - 1; d++) rows *= dims[d];
    const ptrdiff_t pes = (ptrdiff_t)es;
    int par = rows > 1 && rows * inner * (int64_t)es >= OT_SHAPE_PAR_BYTES;
    if (rows == 1) { /* one long row: split it instead */
        if (ist == 1) {
            ot_shape_memcpy(o, s, (size_t)inner * es);
            return;
        }
        if (inner * (int64_t)es >= 4 * OT_SHAPE_PAR_BYTES) {
#pragma omp parallel
            {
                int64_t b, e;
                thread_range(inner, &b, &e);
                if (b < e) copy_row(o + (ptrdiff_t)b * pes, s + (ptrdiff_t)(b * ist) * pes, es, e - b, ist);
            }
            return;
        }
        copy_row(o, s, es, inner, ist);
        return;
    }
#pragma omp parallel if (par)
    {
        int64_t r0, r1;
        thread_range(rows, &r0, &r1);
        if (r0 < r1) {
            int64_t idx[OT_MAX_DIMS], off = 0, t = r0;
            for (int d = m - 2; d >= 0; d--) {
                idx[d] = t % dims[d];
                t /= dims[d];
                off += idx[d] * st[d];
            }
            for (int64_t r = r0; r < r1; r++) {
                copy_row(o + (ptrdiff_t)(r * inner) * pes, s + (ptrdiff_t)off * pes, es, inner, ist);
                for (int d = m - 2; d >= 0; d--) { /* odometer step */
                    off += st[d];
                    if (++idx[d] < dims[d]) break;
                    off -= idx[d] * st[d];
                    idx[d] = 0;
                }
            }
        }
    }
}
