/* grad_linalg.c — gradient builders of the linalg family: MatMul, Gemm, Einsum.
 *
 * MatMul (numpy semantics, 1-D operands promoted, batch dims broadcast):
 *   dA = dY · Bᵀ, dB = Aᵀ · dY, each summed over the batch dims its operand was broadcast
 *   along. Three layouts:
 *   - B has no batch (a weight, [K, N] or 1-D; the [B, S, K] x [K, N] layer case): A, dY
 *     are reshaped (views) to [rows, K] and [rows, N], rows = every batch row of A times M,
 *     and each gradient is ONE Gemm over all rows: dA = Gemm(dY, B, transB),
 *     dB = Gemm(A, dY, transA) — the batch sum is the GEMM's own K loop, no batched
 *     product followed by a reduction.
 *   - A has no batch, B does: Einsum "...mn,...kn->mk" and "mk,...mn->...kn".
 *   - both batched: Einsum "...mn,...kn->...mk" / "...mk,...mn->...kn" over the broadcast
 *     batch, then ReduceSumTo the operand's own shape where it was broadcast.
 *   Einsum turns the transposes into BLAS trans flags, so no operand is copied to
 *   transpose it.
 * Gemm (Y = α op(A) op(B) + β C):
 *   dA = α dY op(B)ᵀ (transA = 0) or α op(B) dYᵀ (transA = 1);
 *   dB = α op(A)ᵀ dY (transB = 0) or α dYᵀ op(A) (transB = 1); each one Gemm with the
 *   transposes as flags; dC = β · ReduceSumTo(dY, shape(C)).
 * Einsum (one or two operands, no label repeated inside a term): the gradient of operand i
 *   is the Einsum "<out>,<other>-><term i>" (one operand: "<out>-><term i>") of dY with the
 *   other operand. Labels of term i found neither in the output nor in the other term
 *   were summed away by the forward; they are left out of the derived output and restored
 *   by Reshape + Expand. Ellipsis dims the operand broadcast are reduced with ReduceSumTo.
 *
 * All shapes are constants from the forward plan (ot_gb_meta). Accumulation rule: each
 * input gradient is produced once with `=` (ot_autodiff sums). */
#include <stdio.h>
#include <string.h>

#include "trainer/grad/grad.h"

/* ---- small emitters ---- */

static ot_status reshape(ot_grad_ctx *c, int v, const int64_t *dims, int nd, const char *tag, int *out) {
    int shp, in[2];
    OT_TRY(ot_gb_const_i64s(c, dims, nd, &shp));
    in[0] = v, in[1] = shp;
    return ot_gb_op1(c, "Reshape", "", tag, in, 2, out, NULL);
}

/* out = v viewed with shape `dims`, when v's shape `from` differs from it. */
static ot_status reshape_if(ot_grad_ctx *c, int v, int from_nd, const int64_t *from, int nd, const int64_t *dims,
                            const char *tag, int *out) {
    if (ot_shape_equal(from_nd, from, nd, dims)) {
        *out = v;
        return OT_OK;
    }
    return reshape(c, v, dims, nd, tag, out);
}

/* out = v (shape `from`) summed down to the shape `to` it was broadcast from. */
static ot_status sum_to(ot_grad_ctx *c, int v, int from_nd, const int64_t *from, int to_nd, const int64_t *to,
                        const char *tag, int *out) {
    if (ot_shape_equal(from_nd, from, to_nd, to)) {
        *out = v;
        return OT_OK;
    }
    if (ot_shape_numel(from_nd, from) == ot_shape_numel(to_nd, to)) /* only 1-dims differ */
        return reshape(c, v, to, to_nd, tag, out);
    int shp, in[2];
    OT_TRY(ot_gb_const_i64s(c, to, to_nd, &shp));
    in[0] = v, in[1] = shp;
    return ot_gb_op1(c, "ReduceSumTo", OT_DOMAIN, tag, in, 2, out, NULL);
}

/* out = alpha · op(a) · op(b) as a Gemm node (opset < 11 needs a C: a zero scalar, β = 0). */
static ot_status gemm(ot_grad_ctx *c, int a, int b, int ta, int tb, float alpha, const char *tag, int *out) {
    int in[3] = {a, b, -1}, node, n_in = 2;
    if (ot_graph_opset(c->g, "") < 11) {
        const ot_tensor *m = ot_gb_meta(c, ot_gb_in(c, 0));
        OT_TRY(ot_gb_const_scalar(c, m->dtype, 0.0, &in[2]));
        n_in = 3;
    }
    OT_TRY(ot_gb_op1(c, "Gemm", "", tag, in, n_in, out, &node));
    if (ta) OT_TRY(ot_gb_attr_int(c, node, "transA", 1));
    if (tb) OT_TRY(ot_gb_attr_int(c, node, "transB", 1));
    if (alpha != 1.0f) OT_TRY(ot_gb_attr_float(c, node, "alpha", alpha));
    if (n_in == 3) OT_TRY(ot_gb_attr_float(c, node, "beta", 0.0f));
    return OT_OK;
}

static ot_status einsum(ot_grad_ctx *c, const char *eq, const int *in, int n_in, const char *tag, int *out) {
    int node;
    OT_TRY(ot_gb_op1(c, "Einsum", "", tag, in, n_in, out, &node));
    return ot_gb_attr_string(c, node, "equation", eq);
}

/* ---- MatMul ---- */

/* dA = dY · Bᵀ, dB = Aᵀ · dY (layouts in the header comment). */
static ot_status grad_matmul(ot_grad_ctx *c) {
    const ot_tensor *am = ot_gb_meta(c, ot_gb_in(c, 0)), *bm = ot_gb_meta(c, ot_gb_in(c, 1));
    const ot_tensor *ym = ot_gb_meta(c, ot_gb_out(c, 0));
    int a = ot_gb_in(c, 0), b = ot_gb_in(c, 1), dy = ot_gb_dy(c, 0);
    int an = am->ndim, bn = bm->ndim;
    int64_t M = an == 1 ? 1 : am->dims[an - 2], K = am->dims[an - 1], N = bn == 1 ? 1 : bm->dims[bn - 1];
    int64_t abatch = an > 2 ? ot_shape_numel(an - 2, am->dims) : 1;
    int64_t bbatch = bn > 2 ? ot_shape_numel(bn - 2, bm->dims) : 1;
    /* Promoted operand shapes [batch..., M, K] / [batch..., K, N] and dY [batch..., M, N]. */
    int64_t ap[OT_MAX_DIMS + 1], bp[OT_MAX_DIMS + 1], yp[OT_MAX_DIMS + 1];
    int apn = an < 2 ? 2 : an, bpn = bn < 2 ? 2 : bn, ypn = ym->ndim + (an == 1) + (bn == 1);
    if (an == 1) ap[0] = 1, ap[1] = K;
    else memcpy(ap, am->dims, (size_t)an * sizeof ap[0]);
    if (bn == 1) bp[0] = K, bp[1] = 1;
    else memcpy(bp, bm->dims, (size_t)bn * sizeof bp[0]);
    memcpy(yp, ym->dims, (size_t)(ypn - 2) * sizeof yp[0]);
    yp[ypn - 2] = M, yp[ypn - 1] = N;
    if (ypn > OT_MAX_DIMS || apn > OT_MAX_DIMS || bpn > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "MatMul gradient: rank above %d", OT_MAX_DIMS);
    int dx;
    if (bbatch == 1) {
        /* One GEMM over all rows of A: [rows, K] x [K, N]. */
        int64_t rows = abatch * M, a2d[2] = {rows, K}, y2d[2] = {rows, N}, b2d[2] = {K, N};
        int dy2, b2, a2;
        OT_TRY(reshape_if(c, dy, ym->ndim, ym->dims, 2, y2d, "dY_2d", &dy2));
        if (ot_gb_need(c, 0)) {
            OT_TRY(reshape_if(c, b, bn, bm->dims, 2, b2d, "B_2d", &b2));
            OT_TRY(gemm(c, dy2, b2, 0, 1, 1.0f, "dA_2d", &dx));
            OT_TRY(reshape_if(c, dx, 2, a2d, an, am->dims, "dA", &dx));
            ot_gb_set_dx(c, 0, dx);
        }
        if (ot_gb_need(c, 1)) {
            OT_TRY(reshape_if(c, a, an, am->dims, 2, a2d, "A_2d", &a2));
            OT_TRY(gemm(c, a2, dy2, 1, 0, 1.0f, "dB_2d", &dx));
            OT_TRY(reshape_if(c, dx, 2, b2d, bn, bm->dims, "dB", &dx));
            ot_gb_set_dx(c, 1, dx);
        }
        return OT_OK;
    }
    /* B batched: work on the promoted shapes (1-D operands viewed as matrices). */
    int ap_v, bp_v, yp_v;
    OT_TRY(reshape_if(c, dy, ym->ndim, ym->dims, ypn, yp, "dY_promoted", &yp_v));
    int a_flat = abatch == 1; /* A is a plain matrix: its gradient sums over B's batch */
    if (ot_gb_need(c, 0)) {
        int in[2];
        OT_TRY(reshape_if(c, b, bn, bm->dims, bpn, bp, "B_promoted", &bp_v));
        in[0] = yp_v, in[1] = bp_v;
        if (a_flat) {
            OT_TRY(einsum(c, "...mn,...kn->mk", in, 2, "dA_mk", &dx));
            int64_t mk[2] = {M, K};
            OT_TRY(reshape_if(c, dx, 2, mk, an, am->dims, "dA", &dx));
        } else {
            int64_t full[OT_MAX_DIMS];
            memcpy(full, yp, (size_t)ypn * sizeof full[0]);
            full[ypn - 1] = K;
            OT_TRY(einsum(c, "...mn,...kn->...mk", in, 2, "dA_full", &dx));
            OT_TRY(sum_to(c, dx, ypn, full, apn, ap, "dA_sum", &dx));
            OT_TRY(reshape_if(c, dx, apn, ap, an, am->dims, "dA", &dx));
        }
        ot_gb_set_dx(c, 0, dx);
    }
    if (ot_gb_need(c, 1)) {
        int in[2];
        int64_t mk[2] = {M, K};
        if (a_flat) OT_TRY(reshape_if(c, a, an, am->dims, 2, mk, "A_2d", &ap_v));
        else OT_TRY(reshape_if(c, a, an, am->dims, apn, ap, "A_promoted", &ap_v));
        in[0] = ap_v, in[1] = yp_v;
        int64_t full[OT_MAX_DIMS];
        memcpy(full, yp, (size_t)ypn * sizeof full[0]);
        full[ypn - 2] = K;
        OT_TRY(einsum(c, a_flat ? "mk,...mn->...kn" : "...mk,...mn->...kn", in, 2, "dB_full", &dx));
        OT_TRY(sum_to(c, dx, ypn, full, bpn, bp, "dB_sum", &dx));
        OT_TRY(reshape_if(c, dx, bpn, bp, bn, bm->dims, "dB", &dx));
        ot_gb_set_dx(c, 1, dx);
    }
    return OT_OK;
}

/* ---- Gemm ---- */

/* Y = α op(A) op(B) + β C:
 *   transA=0: dA = α dY op(B)ᵀ   → Gemm(dY, B, transB = !transB)
 *   transA=1: dA = α op(B) dYᵀ   → Gemm(B, dY, transA = transB, transB = 1)
 *   transB=0: dB = α op(A)ᵀ dY   → Gemm(A, dY, transA = !transA)
 *   transB=1: dB = α dYᵀ op(A)   → Gemm(dY, A, transA = 1, transB = transA)
 *   dC = β Σ_broadcast dY */
static ot_status grad_gemm(ot_grad_ctx *c) {
    const ot_node *n = ot_gb_fwd(c);
    int64_t ta, tb;
    float alpha, beta;
    OT_TRY(ot_attr_int(n, "transA", 0, &ta));
    OT_TRY(ot_attr_int(n, "transB", 0, &tb));
    OT_TRY(ot_attr_float(n, "alpha", 1.0f, &alpha));
    OT_TRY(ot_attr_float(n, "beta", 1.0f, &beta));
    int a = ot_gb_in(c, 0), b = ot_gb_in(c, 1), cc = ot_gb_in(c, 2), dy = ot_gb_dy(c, 0), dx;
    if (ot_gb_need(c, 0)) {
        if (!ta) OT_TRY(gemm(c, dy, b, 0, !tb, alpha, "dA", &dx));
        else OT_TRY(gemm(c, b, dy, (int)tb, 1, alpha, "dA", &dx));
        ot_gb_set_dx(c, 0, dx);
    }
    if (ot_gb_need(c, 1)) {
        if (!tb) OT_TRY(gemm(c, a, dy, !ta, 0, alpha, "dB", &dx));
        else OT_TRY(gemm(c, dy, a, 1, (int)ta, alpha, "dB", &dx));
        ot_gb_set_dx(c, 1, dx);
    }
    if (cc >= 0 && ot_gb_need(c, 2)) {
        const ot_tensor *cm = ot_gb_meta(c, cc), *ym = ot_gb_meta(c, ot_gb_out(c, 0));
        OT_TRY(sum_to(c, dy, ym->ndim, ym->dims, cm->ndim, cm->dims, "dC_sum", &dx));
        if (beta != 1.0f) {
            int k, in[2];
            OT_TRY(ot_gb_const_scalar(c, cm->dtype, (double)beta, &k));
            in[0] = dx, in[1] = k;
            OT_TRY(ot_gb_op1(c, "Mul", "", "dC", in, 2, &dx, NULL));
        }
        ot_gb_set_dx(c, 2, dx);
    }
    return OT_OK;
}

/* ---- Einsum ---- */

#define MAX_TERM 64
#define ELL '.' /* one token standing for "..." */

typedef struct eq_terms {
    int n_in;
    char in[2][MAX_TERM + 1]; /* tokens: letters, ELL for "..." */
    char out[MAX_TERM + 1];
} eq_terms;

/* Parses `eq` into tokens; the implicit output (no "->") is the ellipsis (when any term has
 * one) followed by the labels that occur exactly once, in ASCII order (ONNX/numpy rule). */
static ot_status parse_eq(const char *eq, eq_terms *t) {
    char buf[512];
    int k = 0;
    for (const char *p = eq; *p && k < (int)sizeof buf - 1; p++)
        if (*p != ' ') buf[k++] = *p;
    buf[k] = 0;
    memset(t, 0, sizeof *t);
    char *arrow = strstr(buf, "->");
    if (arrow) *arrow = 0;
    char *lhs = buf, *rhs = arrow ? arrow + 2 : NULL;
    for (int term = 0;; term++) {
        char *comma = strchr(lhs, ',');
        if (comma) *comma = 0;
        if (term >= 2) return ot_errorf(OT_E_UNSUPPORTED, "Einsum gradient: equation '%s' has more than 2 operands", eq);
        int len = 0;
        for (char *p = lhs; *p; p++) {
            if (len >= MAX_TERM) return ot_errorf(OT_E_UNSUPPORTED, "Einsum gradient: term too long in '%s'", eq);
            if (*p == '.') {
                if (p[1] != '.' || p[2] != '.') return ot_errorf(OT_E_INVALID, "Einsum: bad ellipsis in '%s'", eq);
                p += 2;
                t->in[term][len++] = ELL;
            } else {
                t->in[term][len++] = *p;
            }
        }
        t->n_in = term + 1;
        if (!comma) break;
        lhs = comma + 1;
    }
    if (rhs) {
        int len = 0;
        for (char *p = rhs; *p && len < MAX_TERM; p++) {
            if (*p == '.') {
                if (p[1] != '.' || p[2] != '.') return ot_errorf(OT_E_INVALID, "Einsum: bad ellipsis in '%s'", eq);
                p += 2;
                t->out[len++] = ELL;
            } else {
                t->out[len++] = *p;
            }
        }
        return OT_OK;
    }
    int cnt[128] = {0}, ell = 0, len = 0;
    for (int i = 0; i < t->n_in; i++)
        for (const char *p = t->in[i]; *p; p++) {
            if (*p == ELL) ell = 1;
            else cnt[(unsigned char)*p]++;
        }
    if (ell) t->out[len++] = ELL;
    for (int ch = 'A'; ch <= 'z'; ch++)
        if (cnt[ch] == 1) t->out[len++] = (char)ch;
    return OT_OK;
}

static void tokens_str(const char *tok, char *dst) {
    for (; *tok; tok++) {
        if (*tok == ELL) {
            memcpy(dst, "...", 3);
            dst += 3;
        } else {
            *dst++ = *tok;
        }
    }
    *dst = 0;
}

/* The gradient of operand i (see the header comment). */
static ot_status einsum_operand_grad(ot_grad_ctx *c, const eq_terms *t, int i, int64_t *lsize, int ell_nd,
                                     const int64_t *ell_dims) {
    const ot_tensor *xm = ot_gb_meta(c, ot_gb_in(c, i));
    const char *term = t->in[i], *other = t->n_in == 2 ? t->in[1 - i] : "";
    char kept[MAX_TERM + 1];
    int nk = 0, x_ell_nd = 0, has_missing = 0;
    for (const char *p = term; *p; p++) {
        if (*p == ELL) {
            if (!strchr(t->out, ELL))
                return ot_errorf(OT_E_UNSUPPORTED, "Einsum gradient: an operand's ellipsis is summed away "
                                 "(not in the output)");
            kept[nk++] = ELL;
            continue;
        }
        if (strchr(t->out, *p) || strchr(other, *p)) kept[nk++] = *p;
        else has_missing = 1;
    }
    kept[nk] = 0;
    if (strchr(term, ELL)) x_ell_nd = xm->ndim - ((int)strlen(term) - 1);
    char eq[3 * (3 * MAX_TERM + 4) + 8], a[3 * MAX_TERM + 4], b[3 * MAX_TERM + 4], r[3 * MAX_TERM + 4];
    tokens_str(t->out, a);
    tokens_str(other, b);
    tokens_str(kept, r);
    if (t->n_in == 2) snprintf(eq, sizeof eq, "%s,%s->%s", a, b, r);
    else snprintf(eq, sizeof eq, "%s->%s", a, r);
    int in[2] = {ot_gb_dy(c, 0), t->n_in == 2 ? ot_gb_in(c, 1 - i) : -1}, dx;
    OT_TRY(einsum(c, eq, in, t->n_in, "dX_einsum", &dx));
    /* r's shape; s1: term order with 1 for missing labels and the full ellipsis; s2: the
     * same with the operand's own ellipsis dims (left-padded with 1s to the full rank). */
    int64_t rs[OT_MAX_DIMS], s1[OT_MAX_DIMS], s2[OT_MAX_DIMS], s3[OT_MAX_DIMS];
    int nr = 0, n1 = 0, n3 = 0;
    for (const char *p = kept; *p; p++) {
        if (*p == ELL)
            for (int d = 0; d < ell_nd; d++) rs[nr++] = ell_dims[d];
        else rs[nr++] = lsize[(unsigned char)*p];
    }
    for (const char *p = term; *p; p++) {
        int missing = *p != ELL && !strchr(t->out, *p) && !strchr(other, *p);
        if (*p == ELL) {
            for (int d = 0; d < ell_nd; d++) {
                int xd = d - (ell_nd - x_ell_nd); /* operand's own ellipsis dim, right-aligned */
                s1[n1] = ell_dims[d];
                s2[n1++] = xd >= 0 ? xm->dims[(int)(p - term) + xd] : 1;
                if (xd >= 0) s3[n3++] = xm->dims[(int)(p - term) + xd];
            }
        } else {
            int64_t sz = missing ? 1 : lsize[(unsigned char)*p];
            s1[n1] = s2[n1] = sz;
            n1++;
            s3[n3++] = sz;
        }
    }
    OT_TRY(reshape_if(c, dx, nr, rs, n1, s1, "dX_terms", &dx));
    OT_TRY(sum_to(c, dx, n1, s1, n1, s2, "dX_ell_sum", &dx));
    OT_TRY(reshape_if(c, dx, n1, s2, n3, s3, "dX_shape", &dx));
    if (has_missing) {
        int shp, ein[2];
        OT_TRY(ot_gb_const_i64s(c, xm->dims, xm->ndim, &shp));
        ein[0] = dx, ein[1] = shp;
        OT_TRY(ot_gb_op1(c, "Expand", "", "dX", ein, 2, &dx, NULL));
    }
    ot_gb_set_dx(c, i, dx);
    return OT_OK;
}

static ot_status grad_einsum(ot_grad_ctx *c) {
    const char *eqs;
    OT_TRY(ot_attr_string(ot_gb_fwd(c), "equation", "", &eqs));
    eq_terms t;
    OT_TRY(parse_eq(eqs, &t));
    if (t.n_in != ot_gb_fwd(c)->n_in)
        return ot_errorf(OT_E_INVALID, "Einsum equation '%s' names %d operands, the node has %d", eqs, t.n_in,
                         ot_gb_fwd(c)->n_in);
    /* Label sizes and the broadcast ellipsis shape, from the operands' shapes. */
    int64_t lsize[128] = {0}, ell_dims[OT_MAX_DIMS];
    int ell_nd = 0;
    for (int i = 0; i < t.n_in; i++) {
        const ot_tensor *m = ot_gb_meta(c, ot_gb_in(c, i));
        int len = (int)strlen(t.in[i]), has_ell = strchr(t.in[i], ELL) != NULL;
        int end = m->ndim - (has_ell ? len - 1 : len) ; /* ellipsis rank */
        for (int a = 0; a < len; a++)
            for (int b2 = a + 1; b2 < len; b2++)
                if (t.in[i][a] != ELL && t.in[i][a] == t.in[i][b2])
                    return ot_errorf(OT_E_UNSUPPORTED, "Einsum gradient: label '%c' repeats within a term of '%s' "
                                     "(diagonals are not differentiable here)", t.in[i][a], eqs);
        int d = 0;
        for (int a = 0; a < len; a++) {
            if (t.in[i][a] == ELL) {
                if (end > ell_nd) { /* right-align: grow the broadcast ellipsis on the left */
                    memmove(ell_dims + (end - ell_nd), ell_dims, (size_t)ell_nd * sizeof ell_dims[0]);
                    for (int e = 0; e < end - ell_nd; e++) ell_dims[e] = 1;
                    ell_nd = end;
                }
                for (int e = 0; e < end; e++) {
                    int64_t v = m->dims[d + e];
                    int64_t *slot = &ell_dims[ell_nd - end + e];
                    if (*slot == 1) *slot = v;
                }
                d += end;
            } else {
                lsize[(unsigned char)t.in[i][a]] = m->dims[d++];
            }
        }
    }
    for (int i = 0; i < t.n_in; i++)
        if (ot_gb_need(c, i)) OT_TRY(einsum_operand_grad(c, &t, i, lsize, ell_nd, ell_dims));
    return OT_OK;
}

const ot_grad_def ot_grads_linalg[] = {
    {"", "MatMul", 1, 21, grad_matmul, 0},
    {"", "Gemm", 7, 21, grad_gemm, 0},
    {"", "Einsum", 12, 21, grad_einsum, 0},
};
const int ot_grads_linalg_count = (int)(sizeof ot_grads_linalg / sizeof ot_grads_linalg[0]);
