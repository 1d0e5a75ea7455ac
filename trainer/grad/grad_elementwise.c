/* grad_elementwise.c — gradient builders for the elementwise op family (default domain,
 * opsets 13..21, mirroring runtime/ops/elementwise.c) and Identity.
 *
 * Shapes: a partial gradient always has the shape of the value it belongs to. A binary
 * op's output has the broadcast shape of its inputs, so each input's gradient is first
 * formed at the output's shape and then summed back to the input's shape (sum_to below:
 * nothing when the shapes agree, a Reshape when only size-1 dims differ, else the internal
 * ReduceSumTo). Builders know every forward shape (ot_gb_meta), so all shapes are constants.
 *
 * Conventions at non-differentiable points (as PyTorch): Relu' (0) = 0, Abs' (0) = 0; Max and
 * Min split dY evenly between the inputs that attain the result (ties), as torch.maximum
 * and ONNX Runtime's Min/Max gradient do; Clip passes dY where min <= x <= max (bounds
 * included), and min/max get the gradient of the elements clamped to them. Comparisons
 * and logic ops have no gradient (no_grad). Where has no gradient to its condition. Cast's
 * gradient is dY cast back to the input dtype.
 *
 * Accumulation: each builder produces each input gradient once (`=`); ot_autodiff sums the
 * partials of values used several times (Mul(x, x) gets two). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/grad/grad.h"

/* ---- small emitters ---- */

static const ot_tensor *meta_of(const ot_grad_ctx *c, int v) { return ot_gb_meta(c, v); }

/* out = OP(a, b) (b may be -1 for a unary op). */
static ot_status op2(ot_grad_ctx *c, const char *op, const char *tag, int a, int b, int *out) {
    int in[2] = {a, b};
    return ot_gb_op1(c, op, "", tag, in, b < 0 ? 1 : 2, out, NULL);
}
static ot_status op2x(ot_grad_ctx *c, const char *op, const char *tag, int a, int b, int *out) {
    int in[2] = {a, b};
    return ot_gb_op1(c, op, OT_DOMAIN, tag, in, 2, out, NULL);
}

/* A scalar constant of the dtype of forward value `like`. */
static ot_status scalar_like(ot_grad_ctx *c, int like, double x, int *v) {
    return ot_gb_const_scalar(c, meta_of(c, like)->dtype, x, v);
}

/* *out = g summed down to the shape of forward value `target`; g has the shape of forward
 * value `src`. */
static ot_status sum_to(ot_grad_ctx *c, int g, int src, int target, int *out) {
    const ot_tensor *s = meta_of(c, src), *t = meta_of(c, target);
    if (ot_shape_equal(s->ndim, s->dims, t->ndim, t->dims)) {
        *out = g;
        return OT_OK;
    }
    int shape;
    OT_TRY(ot_gb_const_i64s(c, t->dims, t->ndim, &shape));
    if (ot_tensor_numel(s) == ot_tensor_numel(t) && ot_tensor_numel(t) > 0) /* only 1-dims differ */
        return op2(c, "Reshape", "dx_reshape", g, shape, out);
    return op2x(c, "ReduceSumTo", "dx_sum", g, shape, out);
}

/* ---- builders ---- */

/* Y = X: dX = dY. Also Max/Min of one input. */
static ot_status grad_identity(ot_grad_ctx *c) {
    ot_gb_set_dx(c, 0, ot_gb_dy(c, 0));
    return OT_OK;
}

/* Y = A + B: dA = Σ dY, dB = Σ dY (Σ: summed to the input's shape). */
static ot_status grad_add(ot_grad_ctx *c) {
    int y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), d;
    for (int i = 0; i < 2; i++)
        if (ot_gb_need(c, i)) {
            OT_TRY(sum_to(c, dy, y, ot_gb_in(c, i), &d));
            ot_gb_set_dx(c, i, d);
        }
    return OT_OK;
}

/* Y = A - B: dA = Σ dY, dB = -Σ dY. */
static ot_status grad_sub(ot_grad_ctx *c) {
    int y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), d;
    if (ot_gb_need(c, 0)) {
        OT_TRY(sum_to(c, dy, y, ot_gb_in(c, 0), &d));
        ot_gb_set_dx(c, 0, d);
    }
    if (ot_gb_need(c, 1)) {
        OT_TRY(sum_to(c, dy, y, ot_gb_in(c, 1), &d));
        OT_TRY(op2(c, "Neg", "dB", d, -1, &d));
        ot_gb_set_dx(c, 1, d);
    }
    return OT_OK;
}

/* Y = A ⊙ B: dA = Σ dY ⊙ B, dB = Σ dY ⊙ A. */
static ot_status grad_mul(ot_grad_ctx *c) {
    int y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), t, d;
    for (int i = 0; i < 2; i++)
        if (ot_gb_need(c, i)) {
            OT_TRY(op2(c, "Mul", i ? "dB_full" : "dA_full", dy, ot_gb_in(c, 1 - i), &t));
            OT_TRY(sum_to(c, t, y, ot_gb_in(c, i), &d));
            ot_gb_set_dx(c, i, d);
        }
    return OT_OK;
}

/* Y = A / B: dA = Σ dY / B, dB = -Σ (dY / B) ⊙ Y  (= -dY·A/B²). */
static ot_status grad_div(ot_grad_ctx *c) {
    int a = ot_gb_in(c, 0), b = ot_gb_in(c, 1), y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), q, t, d;
    OT_TRY(op2(c, "Div", "dY_over_B", dy, b, &q));
    if (ot_gb_need(c, 0)) {
        OT_TRY(sum_to(c, q, y, a, &d));
        ot_gb_set_dx(c, 0, d);
    }
    if (ot_gb_need(c, 1)) {
        OT_TRY(op2(c, "Mul", "dB_full", q, y, &t));
        OT_TRY(sum_to(c, t, y, b, &d));
        OT_TRY(op2(c, "Neg", "dB", d, -1, &d));
        ot_gb_set_dx(c, 1, d);
    }
    return OT_OK;
}

/* Y = A ^ B: dA = Σ dY ⊙ B ⊙ A^(B-1), dB = Σ dY ⊙ Y ⊙ ln A (defined for A > 0). B may be
 * of another (integer) dtype; it is cast to A's for dA. */
static ot_status grad_pow(ot_grad_ctx *c) {
    int a = ot_gb_in(c, 0), b = ot_gb_in(c, 1), y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), t, u, d;
    ot_dtype adt = meta_of(c, a)->dtype;
    if (ot_gb_need(c, 0)) {
        int bf = b, one, idx;
        if (meta_of(c, b)->dtype != adt) {
            OT_TRY(ot_gb_op1(c, "Cast", "", "B_cast", &b, 1, &bf, &idx));
            OT_TRY(ot_gb_attr_int(c, idx, "to", adt));
        }
        OT_TRY(scalar_like(c, a, 1.0, &one));
        OT_TRY(op2(c, "Sub", "B_minus_1", bf, one, &t));
        OT_TRY(op2(c, "Pow", "A_pow_Bm1", a, t, &u));
        OT_TRY(op2(c, "Mul", "B_A_pow", u, bf, &t));
        OT_TRY(op2(c, "Mul", "dA_full", dy, t, &u));
        OT_TRY(sum_to(c, u, y, a, &d));
        ot_gb_set_dx(c, 0, d);
    }
    if (ot_gb_need(c, 1)) {
        OT_TRY(op2(c, "Log", "log_A", a, -1, &t));
        OT_TRY(op2(c, "Mul", "Y_log_A", y, t, &u));
        OT_TRY(op2(c, "Mul", "dB_full", dy, u, &t));
        OT_TRY(sum_to(c, t, y, b, &d));
        ot_gb_set_dx(c, 1, d);
    }
    return OT_OK;
}

/* Y = √X: dX = dY / Y · ½. */
static ot_status grad_sqrt(ot_grad_ctx *c) {
    int half, t, d;
    OT_TRY(op2(c, "Div", "dY_over_Y", ot_gb_dy(c, 0), ot_gb_out(c, 0), &t));
    OT_TRY(scalar_like(c, ot_gb_in(c, 0), 0.5, &half));
    OT_TRY(op2(c, "Mul", "dX", t, half, &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = 1/X: dX = -dY ⊙ Y². */
static ot_status grad_reciprocal(ot_grad_ctx *c) {
    int y = ot_gb_out(c, 0), t, d;
    OT_TRY(op2(c, "Mul", "Y2", y, y, &t));
    OT_TRY(op2(c, "Mul", "dY_Y2", ot_gb_dy(c, 0), t, &d));
    OT_TRY(op2(c, "Neg", "dX", d, -1, &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = -X: dX = -dY. */
static ot_status grad_neg(ot_grad_ctx *c) {
    int d;
    OT_TRY(op2(c, "Neg", "dX", ot_gb_dy(c, 0), -1, &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = exp X: dX = dY ⊙ Y. */
static ot_status grad_exp(ot_grad_ctx *c) {
    int d;
    OT_TRY(op2(c, "Mul", "dX", ot_gb_dy(c, 0), ot_gb_out(c, 0), &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = ln X: dX = dY / X. */
static ot_status grad_log(ot_grad_ctx *c) {
    int d;
    OT_TRY(op2(c, "Div", "dX", ot_gb_dy(c, 0), ot_gb_in(c, 0), &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = erf X: dX = dY ⊙ (2/√π) e^(−X²). */
static ot_status grad_erf(ot_grad_ctx *c) {
    int x = ot_gb_in(c, 0), k, t, d;
    OT_TRY(op2(c, "Mul", "X2", x, x, &t));
    OT_TRY(op2(c, "Neg", "neg_X2", t, -1, &t));
    OT_TRY(op2(c, "Exp", "exp_neg_X2", t, -1, &t));
    OT_TRY(scalar_like(c, x, 2.0 / sqrt(M_PI), &k));
    OT_TRY(op2(c, "Mul", "erf_prime", t, k, &t));
    OT_TRY(op2(c, "Mul", "dX", ot_gb_dy(c, 0), t, &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Fused pointwise gradients (runtime/ops/grad_tensor.c):
 *   Tanh: dX = dY ⊙ (1 − Y²)        Sigmoid: dX = dY ⊙ Y ⊙ (1 − Y)
 *   Relu: dX = dY ⊙ [X > 0]         Abs:     dX = dY ⊙ sign X */
static ot_status fused(ot_grad_ctx *c, const char *op, int from_output) {
    int d;
    OT_TRY(op2x(c, op, "dX", ot_gb_dy(c, 0), from_output ? ot_gb_out(c, 0) : ot_gb_in(c, 0), &d));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}
static ot_status grad_tanh(ot_grad_ctx *c) { return fused(c, "TanhGrad", 1); }
static ot_status grad_sigmoid(ot_grad_ctx *c) { return fused(c, "SigmoidGrad", 1); }
static ot_status grad_relu(ot_grad_ctx *c) { return fused(c, "ReluGrad", 0); }
static ot_status grad_abs(ot_grad_ctx *c) { return fused(c, "AbsGrad", 0); }

/* Y = Where(C, A, B): dA = Σ Where(C, dY, 0), dB = Σ Where(C, 0, dY); none to C. */
static ot_status grad_where(ot_grad_ctx *c) {
    int cond = ot_gb_in(c, 0), y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), zero, t, d;
    OT_TRY(scalar_like(c, y, 0.0, &zero));
    for (int i = 1; i <= 2; i++) {
        if (!ot_gb_need(c, i)) continue;
        int in[3] = {cond, i == 1 ? dy : zero, i == 1 ? zero : dy};
        OT_TRY(ot_gb_op1(c, "Where", "", i == 1 ? "dA_full" : "dB_full", in, 3, &t, NULL));
        OT_TRY(sum_to(c, t, y, ot_gb_in(c, i), &d));
        ot_gb_set_dx(c, i, d);
    }
    return OT_OK;
}

/* Y = Cast(X): dX = Cast(dY, X's dtype). */
static ot_status grad_cast(ot_grad_ctx *c) {
    int x = ot_gb_in(c, 0), dy = ot_gb_dy(c, 0), d, idx;
    ot_dtype xdt = meta_of(c, x)->dtype;
    if (xdt == meta_of(c, ot_gb_out(c, 0))->dtype) {
        ot_gb_set_dx(c, 0, dy);
        return OT_OK;
    }
    OT_TRY(ot_gb_op1(c, "Cast", "", "dX", &dy, 1, &d, &idx));
    OT_TRY(ot_gb_attr_int(c, idx, "to", xdt));
    ot_gb_set_dx(c, 0, d);
    return OT_OK;
}

/* Y = Max/Min(X_0, ..., X_{n-1}): with M_i = [X_i == Y] and K = Σ_j M_j (the number of
 * inputs attaining Y, >= 1), dX_i = Σ (dY / K) ⊙ M_i. */
static ot_status grad_minmax(ot_grad_ctx *c) {
    const int n = ot_gb_fwd(c)->n_in;
    int y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0), mask[64], k = -1, s, t, d;
    if (n == 1) return grad_identity(c);
    if (n > 64) return ot_errorf(OT_E_UNSUPPORTED, "%d inputs (at most 64 supported)", n);
    ot_dtype dt = meta_of(c, y)->dtype;
    for (int i = 0; i < n; i++) {
        int eq, idx;
        OT_TRY(op2(c, "Equal", "is_selected", ot_gb_in(c, i), y, &eq));
        OT_TRY(ot_gb_op1(c, "Cast", "", "mask", &eq, 1, &mask[i], &idx));
        OT_TRY(ot_gb_attr_int(c, idx, "to", dt));
        if (k < 0) k = mask[i];
        else OT_TRY(op2(c, "Add", "n_selected", k, mask[i], &k));
    }
    OT_TRY(op2(c, "Div", "dY_shared", dy, k, &s));
    for (int i = 0; i < n; i++) {
        if (!ot_gb_need(c, i)) continue;
        OT_TRY(op2(c, "Mul", "dX_full", s, mask[i], &t));
        OT_TRY(sum_to(c, t, y, ot_gb_in(c, i), &d));
        ot_gb_set_dx(c, i, d);
    }
    return OT_OK;
}

/* Y = Clip(X, lo?, hi?): dX = dY ⊙ [lo <= X <= hi]; dlo = Σ dY ⊙ [X < lo],
 * dhi = Σ dY ⊙ [X > hi] (lo and hi are scalars). */
static ot_status grad_clip(ot_grad_ctx *c) {
    int x = ot_gb_in(c, 0), lo = ot_gb_in(c, 1), hi = ot_gb_in(c, 2), y = ot_gb_out(c, 0), dy = ot_gb_dy(c, 0);
    int zero, m = -1, t, d;
    OT_TRY(scalar_like(c, y, 0.0, &zero));
    if (ot_gb_need(c, 0)) {
        if (lo >= 0) OT_TRY(op2(c, "GreaterOrEqual", "above_lo", x, lo, &m));
        if (hi >= 0) {
            OT_TRY(op2(c, "LessOrEqual", "below_hi", x, hi, &t));
            if (m >= 0) OT_TRY(op2(c, "And", "inside", m, t, &m));
            else m = t;
        }
        if (m < 0) {
            d = dy; /* no bounds: the identity */
        } else {
            int in[3] = {m, dy, zero};
            OT_TRY(ot_gb_op1(c, "Where", "", "dX", in, 3, &d, NULL));
        }
        ot_gb_set_dx(c, 0, d);
    }
    for (int i = 1; i <= 2; i++) {
        if (!ot_gb_need(c, i)) continue;
        int bound = i == 1 ? lo : hi;
        OT_TRY(op2(c, i == 1 ? "Less" : "Greater", i == 1 ? "below_lo" : "above_hi", x, bound, &m));
        int in[3] = {m, dy, zero};
        OT_TRY(ot_gb_op1(c, "Where", "", i == 1 ? "dlo_full" : "dhi_full", in, 3, &t, NULL));
        OT_TRY(sum_to(c, t, y, bound, &d));
        ot_gb_set_dx(c, i, d);
    }
    return OT_OK;
}

#define EW(op, fn) {"", op, 13, 21, fn, 0}
#define EW_NONE(op) {"", op, 13, 21, NULL, 1}

const ot_grad_def ot_grads_elementwise[] = {
    EW("Identity", grad_identity),
    EW("Add", grad_add),
    EW("Sub", grad_sub),
    EW("Mul", grad_mul),
    EW("Div", grad_div),
    EW("Pow", grad_pow),
    EW("Sqrt", grad_sqrt),
    EW("Reciprocal", grad_reciprocal),
    EW("Neg", grad_neg),
    EW("Abs", grad_abs),
    EW("Exp", grad_exp),
    EW("Log", grad_log),
    EW("Tanh", grad_tanh),
    EW("Erf", grad_erf),
    EW("Sigmoid", grad_sigmoid),
    EW("Relu", grad_relu),
    EW("Where", grad_where),
    EW("Cast", grad_cast),
    EW("Max", grad_minmax),
    EW("Min", grad_minmax),
    EW("Clip", grad_clip),
    EW_NONE("Equal"),
    EW_NONE("Less"),
    EW_NONE("Greater"),
    EW_NONE("LessOrEqual"),
    EW_NONE("GreaterOrEqual"),
    EW_NONE("Not"),
    EW_NONE("And"),
    EW_NONE("Or"),
};
const int ot_grads_elementwise_count = (int)(sizeof ot_grads_elementwise / sizeof ot_grads_elementwise[0]);
