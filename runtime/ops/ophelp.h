/* ophelp.h — helpers shared by the op family files: axis handling, broadcasting, reading
 * small integer inputs, output metadata. Internal to runtime/. */
#ifndef OT_OPHELP_H
#define OT_OPHELP_H

#include "../../core/lowp.h"
#include "../op.h"

/* Normalises an ONNX axis (negative counts from the end) for a tensor of `rank`; fails
 * naming the node when it is outside [-rank, rank-1]. */
ot_status ot_norm_axis(const ot_op_ctx *c, int64_t axis, int rank, int *out);

/* Sets an output's metadata. */
ot_status ot_set_out(const ot_op_ctx *c, int i, ot_dtype dt, int ndim, const int64_t *dims);

/* Fails unless input i is present, and (when dt != OT_UNDEFINED) of dtype dt. */
ot_status ot_check_input(const ot_op_ctx *c, int i, ot_dtype dt);
/* Fails unless input i is present and float32 or float64 (the dtypes the nn, gradient and
 * loss kernels compute in). */
ot_status ot_check_float_input(const ot_op_ctx *c, int i);
/* As ot_check_float_input, also accepting bfloat16 and float16: for ops whose kernels take
 * 16-bit float tensors (storage 16-bit, arithmetic in f32, one rounding per output element).
 * An op supports 16-bit exactly when its infer accepts it: the autocast pass wraps every op
 * whose infer rejects it in Casts, so only ops with a 16-bit kernel may call this. */
ot_status ot_check_float_lowp_input(const ot_op_ctx *c, int i);
/* Fails unless inputs a and b have the same dtype. */
ot_status ot_check_same_dtype(const ot_op_ctx *c, int a, int b);
/* Fails unless input i's value is known at plan time (call from infer). `what` names it. */
ot_status ot_require_value(const ot_op_ctx *c, int i, const char *what);
/* Copies an integer tensor (any int dtype) into dst[0..max); *n = element count. */
ot_status ot_read_ints(const ot_op_ctx *c, const ot_tensor *t, int64_t *dst, int max, int *n);

/* Multidirectional (numpy) broadcasting of n shapes into out dims; fails naming the node. */
ot_status ot_broadcast_shape(const ot_op_ctx *c, int n, const ot_tensor *const *ts, int *ndim, int64_t *dims);

/* Iteration plan for an elementwise op over broadcast operands. Dimensions are coalesced
 * where every operand allows it, so the common cases (same shape, scalar, row vector) end
 * in one long inner loop. Operand k's element at (outer, j) is at
 *   base_k(outer) + j * inner_stride[k]. */
#define OT_BCAST_MAX 4
typedef struct ot_bcast {
    int n;                               /* operands */
    int ndim;                            /* after coalescing, >= 1 */
    int64_t dims[OT_MAX_DIMS];
    int64_t strides[OT_BCAST_MAX][OT_MAX_DIMS]; /* element strides, 0 where broadcast */
    int64_t inner;                       /* dims[ndim-1] */
    int64_t outer;                       /* product of the other dims */
    int64_t inner_stride[OT_BCAST_MAX];
} ot_bcast;
void ot_bcast_init(ot_bcast *b, int n, const ot_tensor *const *ts, int out_ndim, const int64_t *out_dims);
/* Element offsets of every operand at the start of row `outer`. */
void ot_bcast_row(const ot_bcast *b, int64_t outer, int64_t *base);

/* Row-major element strides of a shape. */
void ot_strides(int ndim, const int64_t *dims, int64_t *strides);

#endif
