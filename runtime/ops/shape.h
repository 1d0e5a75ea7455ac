/* shape.h — internal declarations of the shape op family (runtime/ops/shape*.c).
 *
 * The family moves bytes without doing arithmetic on them (Reshape, Transpose, Concat, Slice,
 * Gather, Expand, ...), generates small tensors from shapes and scalars (Shape, Constant,
 * ConstantOfShape, Range, Trilu), and owns two stragglers with the same plumbing (Dropout in
 * inference mode, CumSum). The table lives in shape.c; each shape_*.c file holds one job.
 * Data-movement kernels work on any dtype with a byte size (bool, ints, f16, bf16, f32, f64)
 * because they copy elements by size, never by value. */
#ifndef OT_OPS_SHAPE_H
#define OT_OPS_SHAPE_H

#include "ophelp.h"

/* Below this many bytes of output a kernel stays single-threaded. */
#define OT_SHAPE_PAR_BYTES ((int64_t)1 << 16)

/* ---- typed attribute structs (one per op that has attributes) ---- */

typedef struct { int allowzero; } ot_reshape_attr;            /* Reshape (allowzero from 14) */
typedef struct { int64_t axis; } ot_flatten_attr;             /* Flatten, default 1 */
typedef struct { int nperm; int64_t perm[OT_MAX_DIMS]; } ot_transpose_attr; /* nperm -1: reverse */
typedef struct { int64_t axis; } ot_concat_attr;              /* Concat, required */
typedef struct {                                              /* Split */
    int64_t axis;
    int64_t num_outputs;  /* 18+; 0 when absent */
} ot_split_attr;
typedef struct { int64_t axis; } ot_gather_attr;              /* Gather, default 0 */
typedef struct { int64_t start, end; int has_end; } ot_shapeop_attr; /* Shape (start/end from 15) */
typedef struct { ot_dtype dtype; unsigned char value[16]; } ot_cofs_attr; /* ConstantOfShape */
typedef struct {                                              /* Constant: a borrowed view of */
    ot_dtype dtype;                                           /* the node's attribute data,   */
    int ndim;                                                 /* which the graph owns.        */
    int64_t dims[OT_MAX_DIMS];
    const void *data;
} ot_constant_attr;
typedef struct { int upper; } ot_trilu_attr;                  /* Trilu, default upper=1 */
typedef struct { int exclusive, reverse; } ot_cumsum_attr;    /* CumSum */

/* ---- helpers shared by the family (shape.c) ---- */

/* Element size of input i; fails naming the node for dtypes without one (string). */
ot_status ot_shape_esize(const ot_op_ctx *c, int i, size_t *es);
/* memcpy, split across threads when large; a no-op when dst == src (an aliased view). */
void ot_shape_memcpy(void *dst, const void *src, size_t n);
/* Fills n elements of size es at dst with the element at val. */
void ot_shape_fill(void *dst, const void *val, size_t es, int64_t n);
/* Gathers a strided view into contiguous dst: dst's row-major element (i_0..i_{n-1}) is
 * src[sum_d i_d * st[d]] in elements of size es. Strides may be 0 (broadcast) or negative
 * (src then points at the view's first element, inside the array). Dims are coalesced; the
 * innermost run is a memcpy when contiguous, a fill when broadcast, and a cache-tiled 2-D
 * transpose when some outer dim is the contiguous one. OpenMP over rows or tiles. */
void ot_shape_strided_copy(void *dst, const void *src, size_t es, int n, const int64_t *dims,
                           const int64_t *st);

/* What Slice selects from a tensor of shape (r, dims): per axis the first index, the step
 * and the count, after ONNX's adjustment and clamping (shape_slice.c states the rules).
 * Axes no `axes` value lists are kept whole (start 0, step 1, count dims[d]). */
typedef struct {
    int64_t start[OT_MAX_DIMS], step[OT_MAX_DIMS], count[OT_MAX_DIMS];
} ot_slice_plan;
/* Reads starts, ends, axes?, steps? from c's inputs first .. first+3 (Slice: 1, SliceGrad:
 * 2) and fills *p; fails naming the node on mismatched lengths, a repeated or out-of-range
 * axis, or a zero step. */
ot_status ot_slice_plan_make(const ot_op_ctx *c, int first, int r, const int64_t *dims, ot_slice_plan *p);

/* ---- entries (parse / infer / cpu), by file ---- */
#define OT_SHAPE_OP(name)                                   \
    ot_status ot_shape_##name##_infer(ot_op_ctx *c);              \
    ot_status ot_shape_##name##_cpu(ot_op_ctx *c);

/* shape_reshape.c: views */
ot_status ot_shape_reshape_parse(const ot_node *n, int opset, void *attr);
ot_status ot_shape_flatten_parse(const ot_node *n, int opset, void *attr);
OT_SHAPE_OP(reshape)
OT_SHAPE_OP(flatten)
OT_SHAPE_OP(squeeze)
OT_SHAPE_OP(unsqueeze)
OT_SHAPE_OP(identity)
OT_SHAPE_OP(dropout)
/* shape_transpose.c */
ot_status ot_shape_transpose_parse(const ot_node *n, int opset, void *attr);
OT_SHAPE_OP(transpose)
/* shape_concat_split.c */
ot_status ot_shape_concat_parse(const ot_node *n, int opset, void *attr);
ot_status ot_shape_split_parse(const ot_node *n, int opset, void *attr);
OT_SHAPE_OP(concat)
OT_SHAPE_OP(split)
/* shape_slice.c */
OT_SHAPE_OP(slice)
/* shape_gather.c */
ot_status ot_shape_gather_parse(const ot_node *n, int opset, void *attr);
OT_SHAPE_OP(gather)
/* shape_expand.c */
OT_SHAPE_OP(expand)
/* shape_generators.c */
ot_status ot_shape_shapeop_parse(const ot_node *n, int opset, void *attr);
ot_status ot_shape_cofs_parse(const ot_node *n, int opset, void *attr);
ot_status ot_shape_constant_parse(const ot_node *n, int opset, void *attr);
ot_status ot_shape_trilu_parse(const ot_node *n, int opset, void *attr);
OT_SHAPE_OP(shapeop)
OT_SHAPE_OP(cofs)
OT_SHAPE_OP(constant)
OT_SHAPE_OP(range)
OT_SHAPE_OP(trilu)
/* shape_cumsum.c */
ot_status ot_shape_cumsum_parse(const ot_node *n, int opset, void *attr);
OT_SHAPE_OP(cumsum)

#undef OT_SHAPE_OP

#endif

