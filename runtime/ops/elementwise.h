/* elementwise.h — internal declarations shared by the elementwise family files
 * (elementwise.c: table and the broadcasting driver; elementwise_unary.c, _binary.c,
 * _minmax.c, _logic.c, _cast.c: the ops). Not for use outside runtime/ops/elementwise*.c.
 *
 * Every kernel of the family is a "segment function": it computes n consecutive output
 * elements from operands whose elements sit at x[k][i * s[k]], where s[k] is 0 (the
 * operand is broadcast along the segment) or 1 (contiguous). The driver (ot_ew_apply)
 * walks the broadcast iteration plan of ophelp.h (ot_bcast), cuts the output into chunks
 * and hands each chunk's rows to the segment function, in parallel when the work is large.
 * Segment functions branch on the strides once per segment, so the loops they run are plain
 * contiguous loops the compiler vectorises. */
#ifndef OT_OPS_ELEMENTWISE_H
#define OT_OPS_ELEMENTWISE_H

#include "ophelp.h"

/* Dispatch tables are indexed by ot_dtype; every storable dtype code is below this. */
#define OT_EW_NDT 17

/* Computes y[0..n) from x[k][i * s[k]] (see above); `p` is op data (Clip bounds, Cast
 * dtypes), NULL for most ops. The pointers are restrict-qualified inside: y must not overlap
 * an operand. (If the planner ever runs these ops in place, note that y[i] depends only on
 * element i of each operand, except in Max/Min with more than two inputs, whose later inputs
 * are read after y has been written.) */
typedef void (*ot_ew_fn)(void *y, const void *const *x, const int64_t *s, int64_t n, const void *p);

/* Relative cost per element: the driver goes parallel above a fixed amount of work. */
#define OT_EW_CHEAP 1 /* add, compare, select, copy */
#define OT_EW_DIV 4   /* division, sqrt */
#define OT_EW_TRANS 16 /* exp, log, tanh, erf, pow */

/* Asks for vectorisation of the segment loops (honoured under -fopenmp). Loops whose body
 * calls libm or divides integers stay scalar; clang reports those as -Wpass-failed, which is
 * expected here and silenced so -Werror builds with clang too. */
#define OT_EW_SIMD _Pragma("omp simd")
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* Segment-function generators. OT_EW_SEG1: y[i] = EXPR with `a` = x[i]. OT_EW_SEG2:
 * y[i] = EXPR with `a` = A element, `b` = B element; the stride cases (same shape, B
 * broadcast, A broadcast) each get a plain contiguous loop, anything else a strided one. */
#define OT_EW_SEG1(NAME, TX, TY, EXPR)                                                              \
    static void NAME(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *p) { \
        (void)p;                                                                                    \
        TY *restrict y = yv;                                                                        \
        const TX *restrict x = xv[0];                                                               \
        if (s[0] == 1) {                                                                            \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                const TX a = x[i];                                                                  \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        } else {                                                                                    \
            const TX a = x[0];                                                                      \
            const TY v = (EXPR);                                                                    \
            for (int64_t i = 0; i < n; i++) y[i] = v;                                               \
        }                                                                                           \
    }

#define OT_EW_SEG2(NAME, TA, TB, TY, EXPR)                                                          \
    static void NAME(void *yv, const void *const *xv, const int64_t *s, int64_t n, const void *p) { \
        (void)p;                                                                                    \
        TY *restrict y = yv;                                                                        \
        const TA *restrict pa = xv[0];                                                              \
        const TB *restrict pb = xv[1];                                                              \
        if (s[0] == 1 && s[1] == 1) {                                                               \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                const TA a = pa[i];                                                                 \
                const TB b = pb[i];                                                                 \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        } else if (s[0] == 1 && s[1] == 0) {                                                        \
            const TB b = pb[0];                                                                     \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                const TA a = pa[i];                                                                 \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        } else if (s[0] == 0 && s[1] == 1) {                                                        \
            const TA a = pa[0];                                                                     \
            OT_EW_SIMD for (int64_t i = 0; i < n; i++) {                                            \
                const TB b = pb[i];                                                                 \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        } else {                                                                                    \
            const int64_t sa = s[0], sb = s[1];                                                     \
            for (int64_t i = 0; i < n; i++) {                                                       \
                const TA a = pa[i * sa];                                                            \
                const TB b = pb[i * sb];                                                            \
                y[i] = (EXPR);                                                                      \
            }                                                                                       \
        }                                                                                           \
    }

/* y = fn(xs...) with numpy broadcasting of the nx (<= OT_BCAST_MAX) operands to y's shape
 * (y's dtype and shape are already set by infer, its data allocated). Empty outputs are a
 * no-op. Cannot fail. */
void ot_ew_apply(const ot_tensor *const *xs, int nx, ot_tensor *y, ot_ew_fn fn, const void *p, int cost);

/* 16-bit floats (bf16, f16): an op supports them by listing its f32 segment function under
 * OT_BF16 and OT_F16 in its table (OT_EW_LOWP), and running through ot_ew_run, which sends
 * 16-bit outputs to ot_ew_apply_lowp: operands are converted to f32 in blocks (operands
 * already f32 pass through), the f32 segment function computes the block, and each output
 * element is rounded once to y's dtype (nearest-even). Results are bit-identical to the f32
 * kernel on the converted inputs followed by one conversion of the output. */
#define OT_EW_LOWP(f32fn) [OT_BF16] = f32fn, [OT_F16] = f32fn
/* The operands i and j of a mixed-precision op (domain ai.onnxtune): one 16-bit and one f32, or
 * both the same 16-bit type; *lowp receives the 16-bit type. Errors name both dtypes. */
ot_status ot_ew_mixed_dtype(const ot_op_ctx *c, int i, int j, ot_dtype *lowp);
/* Add/Sub/Mul/Div of domain ai.onnxtune: a 16-bit operand with an f32 one (autocast only). */
ot_status ot_ew_mixed_infer(ot_op_ctx *c);
ot_status ot_ew_mixed_cpu(ot_op_ctx *c);
/* Where of domain ai.onnxtune: 16-bit X or Y with an f32 Y or X (autocast only). */
ot_status ot_ew_where_mixed_infer(ot_op_ctx *c);
ot_status ot_ew_where_mixed_cpu(ot_op_ctx *c);
void ot_ew_apply_lowp(const ot_tensor *const *xs, int nx, ot_tensor *y, ot_ew_fn f32fn, const void *p, int cost);
/* ot_ew_apply, or ot_ew_apply_lowp when y is 16-bit. */
void ot_ew_run(const ot_tensor *const *xs, int nx, ot_tensor *y, ot_ew_fn fn, const void *p, int cost);

/* Fails with OT_E_UNSUPPORTED unless table[input i's dtype] is set; the message lists the
 * dtypes the table supports. */
ot_status ot_ew_check_dtype(const ot_op_ctx *c, int i, const ot_ew_fn *table);

/* Infer for ops whose output has input 0's shape and dtype `dt` (OT_UNDEFINED: input 0's). */
ot_status ot_ew_infer_unary(ot_op_ctx *c, const ot_ew_fn *table, ot_dtype dt);
/* Infer for ops whose inputs [first, first+n) share one dtype and broadcast together; the
 * output has the broadcast shape and dtype `dt` (OT_UNDEFINED: input `first`'s). */
ot_status ot_ew_infer_bcast(ot_op_ctx *c, int first, int n, const ot_ew_fn *table, ot_dtype dt);

/* Cast's attributes (opset 13: `to`; opset 19+: also `saturate`, which only matters for
 * float8 targets, which onnxtune does not store). */
typedef struct ot_cast_attr {
    ot_dtype to;
    int saturate;
} ot_cast_attr;

/* Registry hooks, one infer and one cpu function per op (plus Cast's parse). */
#define OT_EW_DECL(op)                          \
    ot_status ot_ew_##op##_infer(ot_op_ctx *c); \
    ot_status ot_ew_##op##_cpu(ot_op_ctx *c);

/* elementwise_unary.c */
OT_EW_DECL(sqrt)
OT_EW_DECL(reciprocal)
OT_EW_DECL(neg)
OT_EW_DECL(abs)
OT_EW_DECL(exp)
OT_EW_DECL(log)
OT_EW_DECL(tanh)
OT_EW_DECL(erf)
OT_EW_DECL(sigmoid)
OT_EW_DECL(relu)
/* elementwise_binary.c */
OT_EW_DECL(add)
OT_EW_DECL(sub)
OT_EW_DECL(mul)
OT_EW_DECL(div)
OT_EW_DECL(pow)
/* elementwise_minmax.c */
OT_EW_DECL(max)
OT_EW_DECL(min)
OT_EW_DECL(clip)
/* elementwise_logic.c */
OT_EW_DECL(equal)
OT_EW_DECL(less)
OT_EW_DECL(greater)
OT_EW_DECL(less_equal)
OT_EW_DECL(greater_equal)
OT_EW_DECL(not)
OT_EW_DECL(and)
OT_EW_DECL(or)
OT_EW_DECL(where)
/* elementwise_cast.c */
OT_EW_DECL(cast)
ot_status ot_ew_cast13_parse(const ot_node *n, int opset, void *attr);
ot_status ot_ew_cast19_parse(const ot_node *n, int opset, void *attr);

#endif
