/* linalg_einsum.c — Einsum with one or two operands, opsets 12..21.
 *
 * The equation is parsed once (ot_einsum_parse) into label codes: letters 'A'..'Z' are
 * 1..26 and 'a'..'z' 27..52 (so sorting codes sorts labels as ASCII, upper case first, as
 * the implicit output order requires); "..." is OT_EINSUM_ELLIPSIS. When shapes are known
 * every label gets a size and, per operand, an element stride; ellipsis dims become labels
 * 53..60, right-aligned across operands and broadcast numpy-style (a size-1 dim has stride
 * 0). A label repeated inside one term takes the diagonal (its strides add up).
 *
 * One operand: a strided permute + sum ("ij->ji", "ij->i", "ii->i", "...ij->...").
 * Two operands: labels split into batch (both operands and output), M (first operand and
 * output), N (second operand and output), K (both operands, not output); labels in one
 * operand only and not in the output are summed out of that operand first. Each operand
 * is used in place when its M/K (K/N) labels merge into one strided dim with a unit
 * stride on either side (transposes become BLAS trans flags), otherwise it is copied once
 * into [batch, M, K] ([batch, K, N]) order. The batched GEMM (linalg_blas.c) writes
 * [batch, M, N]; when the output order differs, one permute follows. Three or more
 * operands are rejected. dtypes: f32, f64, bf16, f16, i32, i64, u32, u64 (16-bit: sums in
 * f32/double, each output rounded once, the GEMM through linalg_lowp). Accumulation rule: the
 * output is written with `=`. */
#include "linalg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_LABELS 61 /* 0 unused, 1..52 letters, 53..60 ellipsis dims */
#define ELL_BASE 53

/* ---- parse ------------------------------------------------------------------------ */

static int label_code(char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A' + 1;
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 27;
    return -1;
}
static char label_char(int code) { return code <= 26 ? (char)('A' + code - 1) : (char)('a' + code - 27); }

/* Parses term text [s, e) into codes; fails naming the equation. */
static ot_status parse_term(const ot_node *n, const char *eq, const char *s, const char *e, unsigned char *codes,
                            int *len, int *has_ell) {
    int k = 0;
    *has_ell = 0;
    for (const char *p = s; p < e; p++) {
        if (*p == '.') {
            if (e - p < 3 || p[1] != '.' || p[2] != '.')
                return ot_errorf(OT_E_INVALID, "%s: equation '%s': '.' must be part of an ellipsis '...'",
                                 ot_node_name(n), eq);
            if (*has_ell)
                return ot_errorf(OT_E_INVALID, "%s: equation '%s': a term has more than one ellipsis",
                                 ot_node_name(n), eq);
            *has_ell = 1;
            p += 2;
            if (k >= OT_EINSUM_MAX_TERM) break;
            codes[k++] = OT_EINSUM_ELLIPSIS;
            continue;
        }
        int code = label_code(*p);
        if (code < 0)
            return ot_errorf(OT_E_INVALID, "%s: equation '%s': unexpected character '%c' (labels are letters)",
                             ot_node_name(n), eq, *p);
        if (k >= OT_EINSUM_MAX_TERM)
            return ot_errorf(OT_E_INVALID, "%s: equation '%s': a term has more than %d labels",
                             ot_node_name(n), eq, OT_EINSUM_MAX_TERM);
        codes[k++] = (unsigned char)code;
    }
    *len = k;
    return OT_OK;
}

ot_status ot_einsum_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    ot_einsum_attr *a = attr;
    memset(a, 0, sizeof *a);
    const char *raw;
    OT_TRY(ot_attr_string(n, "equation", NULL, &raw));
    if (!raw) return ot_errorf(OT_E_INVALID, "%s: required attribute 'equation' is missing", ot_node_name(n));
    /* Copy without whitespace. */
    char eq[256];
    size_t k = 0;
    for (const char *p = raw; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n') continue;
        if (k + 1 >= sizeof eq)
            return ot_errorf(OT_E_UNSUPPORTED, "%s: equation '%.64s...' is longer than %zu characters",
                             ot_node_name(n), raw, sizeof eq - 1);
        eq[k++] = *p;
    }
    eq[k] = '\0';
    memcpy(a->equation, eq, k + 1);

    const char *arrow = strstr(eq, "->");
    const char *lhs_end = arrow ? arrow : eq + k;
    int terms = 1;
    for (const char *p = eq; p < lhs_end; p++) terms += *p == ',';
    if (terms != n->n_in)
        return ot_errorf(OT_E_INVALID, "%s: equation '%s' names %d operand(s) but the node has %d input(s)",
                         ot_node_name(n), eq, terms, n->n_in);
    if (terms > 2)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: equation '%s': Einsum with %d operands is not supported (at most 2)",
                         ot_node_name(n), eq, terms);
    a->n_terms = terms;
    int any_ell = 0;
    const char *s = eq;
    for (int t = 0; t < terms; t++) {
        const char *e = s;
        while (e < lhs_end && *e != ',') e++;
        int has_ell;
        OT_TRY(parse_term(n, eq, s, e, a->term[t], &a->len[t], &has_ell));
        any_ell |= has_ell;
        s = e + 1;
    }
    int count[N_LABELS] = {0};
    for (int t = 0; t < terms; t++)
        for (int i = 0; i < a->len[t]; i++)
            if (a->term[t][i] != OT_EINSUM_ELLIPSIS) count[a->term[t][i]]++;
    if (arrow) {
        if (strstr(arrow + 2, "->"))
            return ot_errorf(OT_E_INVALID, "%s: equation '%s' has more than one '->'", ot_node_name(n), eq);
        for (const char *p = arrow + 2; *p; p++)
            if (*p == ',')
                return ot_errorf(OT_E_INVALID, "%s: equation '%s': the output term cannot contain ','",
                                 ot_node_name(n), eq);
        OT_TRY(parse_term(n, eq, arrow + 2, eq + k, a->out, &a->out_len, &a->out_has_ellipsis));
        if (a->out_has_ellipsis && !any_ell)
            return ot_errorf(OT_E_INVALID, "%s: equation '%s': the output has '...' but no input does",
                             ot_node_name(n), eq);
        int seen[N_LABELS] = {0};
        for (int i = 0; i < a->out_len; i++) {
            int L = a->out[i];
            if (L == OT_EINSUM_ELLIPSIS) continue;
            if (!count[L])
                return ot_errorf(OT_E_INVALID, "%s: equation '%s': output label '%c' does not appear in any input",
                                 ot_node_name(n), eq, label_char(L));
            if (seen[L]++)
                return ot_errorf(OT_E_INVALID, "%s: equation '%s': output label '%c' appears twice",
                                 ot_node_name(n), eq, label_char(L));
        }
    } else {
        /* Implicit output: "..." first, then the labels used exactly once, sorted. */
        int m = 0;
        if (any_ell) {
            a->out[m++] = OT_EINSUM_ELLIPSIS;
            a->out_has_ellipsis = 1;
        }
        for (int L = 1; L < ELL_BASE; L++)
            if (count[L] == 1) a->out[m++] = (unsigned char)L;
        a->out_len = m;
    }
    return OT_OK;
}

/* ---- binding labels to shapes ------------------------------------------------------ */

typedef struct einsum_bind {
    int n_ops;
    int64_t size[N_LABELS];           /* -1 when the label is unused */
    int in_op[2][N_LABELS];           /* label appears in operand t's term */
    int64_t opsize[2][N_LABELS];      /* the operand's own size for the label */
    int64_t stride[2][N_LABELS];      /* effective stride; 0 when absent or broadcast */
    int out_n;                        /* expanded output labels */
    int out[OT_MAX_DIMS];
    int64_t out_dims[OT_MAX_DIMS];
    int in_out[N_LABELS];
} einsum_bind;

static ot_status einsum_bind_shapes(const ot_op_ctx *c, einsum_bind *b) {
    const ot_einsum_attr *a = c->attr;
    memset(b, 0, sizeof *b);
    for (int L = 0; L < N_LABELS; L++) b->size[L] = -1;
    b->n_ops = a->n_terms;
    int E = 0, ell[2];
    char s1[128];
    for (int t = 0; t < a->n_terms; t++) {
        OT_TRY(ot_check_input(c, t, OT_UNDEFINED));
        const ot_tensor *x = c->in[t];
        int has_ell = 0;
        for (int i = 0; i < a->len[t]; i++) has_ell |= a->term[t][i] == OT_EINSUM_ELLIPSIS;
        int letters = a->len[t] - has_ell;
        ell[t] = x->ndim - letters;
        if (ell[t] < 0 || (!has_ell && ell[t] != 0))
            return ot_errorf(OT_E_SHAPE, "%s: equation '%s': term %d has %d label(s) but input %d is %s",
                             ot_op_label(c), a->equation, t, letters, t, ot_shape_str(s1, sizeof s1, x->ndim, x->dims));
        if (ell[t] > E) E = ell[t];
    }
    for (int t = 0; t < a->n_terms; t++) {
        const ot_tensor *x = c->in[t];
        int64_t st[OT_MAX_DIMS];
        ot_strides(x->ndim, x->dims, st);
        int axis = 0;
        for (int i = 0; i < a->len[t]; i++) {
            int codes[OT_MAX_DIMS], nc = 0;
            if (a->term[t][i] == OT_EINSUM_ELLIPSIS)
                for (int j = 0; j < ell[t]; j++) codes[nc++] = ELL_BASE + E - ell[t] + j;
            else
                codes[nc++] = a->term[t][i];
            for (int j = 0; j < nc; j++, axis++) {
                int L = codes[j];
                int64_t d = x->dims[axis];
                if (b->in_op[t][L]) { /* repeated in this term: diagonal */
                    if (b->opsize[t][L] != d)
                        return ot_errorf(OT_E_SHAPE, "%s: equation '%s': label '%c' repeats in term %d with sizes "
                                         "%lld and %lld", ot_op_label(c), a->equation, label_char(L), t,
                                         (long long)b->opsize[t][L], (long long)d);
                    b->stride[t][L] += st[axis];
                } else {
                    b->in_op[t][L] = 1;
                    b->opsize[t][L] = d;
                    b->stride[t][L] = st[axis];
                }
            }
        }
    }
    /* Global sizes: equal, or 1 broadcasting against the other. */
    for (int L = 1; L < N_LABELS; L++)
        for (int t = 0; t < a->n_terms; t++) {
            if (!b->in_op[t][L]) continue;
            int64_t d = b->opsize[t][L];
            if (b->size[L] < 0 || b->size[L] == 1)
                b->size[L] = d;
            else if (d != b->size[L] && d != 1) {
                char lab[24];
                if (L >= ELL_BASE)
                    snprintf(lab, sizeof lab, "ellipsis dim %d", L - ELL_BASE);
                else
                    snprintf(lab, sizeof lab, "label '%c'", label_char(L));
                return ot_errorf(OT_E_SHAPE, "%s: equation '%s': %s has size %lld in one input and %lld in another",
                                 ot_op_label(c), a->equation, lab, (long long)b->size[L], (long long)d);
            }
        }
    for (int t = 0; t < a->n_terms; t++)
        for (int L = 1; L < N_LABELS; L++)
            if (b->in_op[t][L] && b->opsize[t][L] != b->size[L]) b->stride[t][L] = 0; /* broadcast */
    /* Output labels. */
    int n = 0;
    for (int i = 0; i < a->out_len; i++) {
        int L = a->out[i];
        if (L == OT_EINSUM_ELLIPSIS) {
            for (int j = 0; j < E; j++) {
                if (n >= OT_MAX_DIMS) goto too_many;
                b->out[n++] = ELL_BASE + j;
            }
        } else {
            if (n >= OT_MAX_DIMS) goto too_many;
            b->out[n++] = L;
        }
    }
    b->out_n = n;
    for (int i = 0; i < n; i++) {
        b->out_dims[i] = b->size[b->out[i]];
        b->in_out[b->out[i]] = 1;
    }
    return OT_OK;
too_many:
    return ot_errorf(OT_E_UNSUPPORTED, "%s: equation '%s': output rank exceeds %d", ot_op_label(c), a->equation,
                     OT_MAX_DIMS);
}

static ot_status einsum_dtype(const ot_op_ctx *c) {
    const ot_einsum_attr *a = c->attr;
    for (int t = 0; t < a->n_terms; t++) OT_TRY(ot_check_input(c, t, OT_UNDEFINED));
    if (a->n_terms == 2) OT_TRY(ot_check_same_dtype(c, 0, 1));
    if (!ot_gemm_dtype_ok(c->in[0]->dtype) && !ot_dtype_is_lowp(c->in[0]->dtype))
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported (expected float32, float64, bfloat16, "
                         "float16, int32, int64, uint32 or uint64)", ot_op_label(c), ot_dtype_name(c->in[0]->dtype));
    return OT_OK;
}

ot_status ot_einsum_infer(ot_op_ctx *c) {
    OT_TRY(einsum_dtype(c));
    einsum_bind b;
    OT_TRY(einsum_bind_shapes(c, &b));
    return ot_set_out(c, 0, c->in[0]->dtype, b.out_n, b.out_dims);
}

/* ---- strided permute + sum --------------------------------------------------------- */

#define DEFINE_SSUM(NAME, T, ACC, LOAD, STORE)                                                                        \
    static void NAME(T *restrict dst, const T *restrict src, int no, const int64_t *odims,                  \
                     const int64_t *ostride, int nr, const int64_t *rdims, const int64_t *rstride) {         \
        int64_t inner = no ? odims[no - 1] : 1, istr = no ? ostride[no - 1] : 0, outer = 1, rtot = 1;        \
        for (int d = 0; d < no - 1; d++) outer *= odims[d];                                                 \
        for (int r = 0; r < nr; r++) rtot *= rdims[r];                                                      \
        int64_t work = outer * inner * (rtot ? rtot : 1);                                                   \
        _Pragma("omp parallel for schedule(static) if (work > (1 << 16) && outer > 1)")                     \
        for (int64_t o = 0; o < outer; o++) {                                                              \
            int64_t base = 0, rem = o;                                                                     \
            for (int d = no - 2; d >= 0; d--) {                                                            \
                base += (rem % odims[d]) * ostride[d];                                                     \
                rem /= odims[d];                                                                           \
            }                                                                                              \
            T *restrict drow = dst + o * inner;                                                            \
            if (nr == 0) {                                                                                 \
                for (int64_t j = 0; j < inner; j++) drow[j] = src[base + j * istr];                        \
                continue;                                                                                  \
            }                                                                                              \
            for (int64_t j = 0; j < inner; j++) {                                                          \
                const T *p = src + base + j * istr;                                                        \
                ACC acc = 0;                                                                               \
                if (nr == 1) {                                                                             \
                    for (int64_t r = 0; r < rdims[0]; r++) acc += LOAD(p[r * rstride[0]]);                  \
                } else if (rtot > 0) {                                                                     \
                    int64_t idx[OT_MAX_DIMS] = {0}, off = 0;                                               \
                    for (int64_t r = 0; r < rtot; r++) {                                                   \
                        acc += LOAD(p[off]);                                                                \
                        for (int d = nr - 1; d >= 0; d--) {                                                \
                            if (++idx[d] < rdims[d]) {                                                     \
                                off += rstride[d];                                                         \
                                break;                                                                     \
                            }                                                                              \
                            off -= (rdims[d] - 1) * rstride[d];                                            \
                            idx[d] = 0;                                                                    \
                        }                                                                                  \
                    }                                                                                      \
                }                                                                                          \
                drow[j] = STORE(acc);                                                                      \
            }                                                                                              \
        }                                                                                                  \
    }
#define LOAD_BF16(x) (double)ot_bf16_to_f32(x)
#define LOAD_F16(x) (double)ot_f16_to_f32(x)
#define STORE_BF16(acc) ot_f32_to_bf16((float)(acc))
#define STORE_F16(acc) ot_f32_to_f16((float)(acc))
DEFINE_SSUM(ssum_f32, float, double, (double), (float))
DEFINE_SSUM(ssum_f64, double, double, (double), (double))
DEFINE_SSUM(ssum_u32, uint32_t, uint32_t, (uint32_t), (uint32_t))
DEFINE_SSUM(ssum_u64, uint64_t, uint64_t, (uint64_t), (uint64_t))
/* 16-bit: summed in double, rounded once (through f32) to the 16-bit type */
DEFINE_SSUM(ssum_bf16, uint16_t, double, LOAD_BF16, STORE_BF16)
DEFINE_SSUM(ssum_f16, uint16_t, double, LOAD_F16, STORE_F16)

void ot_strided_sum(ot_dtype dt, void *dst, const void *src, int no, const int64_t *odims, const int64_t *ostride,
                    int nr, const int64_t *rdims, const int64_t *rstride) {
    switch (dt) {
    case OT_F32: ssum_f32(dst, src, no, odims, ostride, nr, rdims, rstride); break;
    case OT_F64: ssum_f64(dst, src, no, odims, ostride, nr, rdims, rstride); break;
    case OT_I32:
    case OT_U32: ssum_u32(dst, src, no, odims, ostride, nr, rdims, rstride); break;
    case OT_I64:
    case OT_U64: ssum_u64(dst, src, no, odims, ostride, nr, rdims, rstride); break;
    case OT_BF16: ssum_bf16(dst, src, no, odims, ostride, nr, rdims, rstride); break;
    case OT_F16: ssum_f16(dst, src, no, odims, ostride, nr, rdims, rstride); break;
    default: break;
    }
}

/* ---- two-operand lowering ----------------------------------------------------------- */

/* An operand as labels with strides: data plus stride[L] (0 = not present / broadcast). */
typedef struct operand {
    const void *data;
    int64_t stride[N_LABELS];
} operand;

/* Merges labels ls[0..n) (outer to inner) into one dim; 0 when their strides do not nest. */
static int merge_group(int n, const int *ls, const int64_t *size, const int64_t *stride, int64_t *msize,
                       int64_t *mstride) {
    int64_t prod = 1;
    for (int i = 0; i < n; i++) {
        prod *= size[ls[i]];
        if (i + 1 < n && stride[ls[i]] != stride[ls[i + 1]] * size[ls[i + 1]]) return 0;
    }
    *msize = prod;
    *mstride = n ? stride[ls[n - 1]] : 0;
    return 1;
}

/* Copies operand `op` into a fresh contiguous buffer laid out as labels ls[0..n) (outer to
 * inner) and rewrites its strides. */
static ot_status make_contiguous(const ot_op_ctx *c, ot_dtype dt, operand *op, int n, const int *ls,
                                 const int64_t *size, void **owned) {
    int64_t dims[N_LABELS], ost[N_LABELS], total = 1;
    for (int i = 0; i < n; i++) {
        dims[i] = size[ls[i]];
        ost[i] = op->stride[ls[i]];
        total *= dims[i];
    }
    void *buf = malloc((size_t)(total ? total : 1) * ot_dtype_size(dt));
    if (!buf) return ot_errorf(OT_E_NOMEM, "%s: out of memory for an Einsum operand copy", ot_op_label(c));
    ot_strided_sum(dt, buf, op->data, n, dims, ost, 0, NULL, NULL);
    memset(op->stride, 0, sizeof op->stride);
    int64_t s = 1;
    for (int i = n - 1; i >= 0; i--) {
        op->stride[ls[i]] = s;
        s *= dims[i];
    }
    op->data = buf;
    *owned = buf;
    return OT_OK;
}

/* Sums operand `op` over the labels it alone carries (rl[0..nr)), keeping kl[0..nk). */
static ot_status presum(const ot_op_ctx *c, ot_dtype dt, operand *op, int nk, const int *kl, int nr, const int *rl,
                        const int64_t *size, void **owned) {
    int64_t kd[OT_MAX_DIMS], ks[OT_MAX_DIMS], rd[OT_MAX_DIMS], rs[OT_MAX_DIMS], total = 1;
    for (int i = 0; i < nk; i++) {
        kd[i] = size[kl[i]];
        ks[i] = op->stride[kl[i]];
        total *= kd[i];
    }
    for (int i = 0; i < nr; i++) {
        rd[i] = size[rl[i]];
        rs[i] = op->stride[rl[i]];
    }
    void *buf = malloc((size_t)(total ? total : 1) * ot_dtype_size(dt));
    if (!buf) return ot_errorf(OT_E_NOMEM, "%s: out of memory for an Einsum partial sum", ot_op_label(c));
    ot_strided_sum(dt, buf, op->data, nk, kd, ks, nr, rd, rs);
    memset(op->stride, 0, sizeof op->stride);
    int64_t s = 1;
    for (int i = nk - 1; i >= 0; i--) {
        op->stride[kl[i]] = s;
        s *= kd[i];
    }
    op->data = buf;
    *owned = buf;
    return OT_OK;
}

/* Labels of op with a nonzero stride, in memory order (largest stride first). */
static int labels_by_stride(const operand *op, const int *want, int *out) {
    int n = 0;
    for (int L = 1; L < N_LABELS; L++)
        if (op->stride[L] && want[L]) out[n++] = L;
    for (int i = 1; i < n; i++) /* insertion sort, descending stride */
        for (int j = i; j > 0 && op->stride[out[j]] > op->stride[out[j - 1]]; j--) {
            int t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static ot_status einsum_two(ot_op_ctx *c, const einsum_bind *b) {
    ot_dtype dt = c->in[0]->dtype;
    size_t esz = ot_dtype_size(dt);
    operand A = {.data = c->in[0]->data}, B = {.data = c->in[1]->data};
    for (int L = 1; L < N_LABELS; L++) {
        A.stride[L] = b->size[L] > 1 ? b->stride[0][L] : 0;
        B.stride[L] = b->size[L] > 1 ? b->stride[1][L] : 0;
    }
    void *tmp[5] = {0};
    ot_status st = OT_OK;

    /* Sum out labels only one operand carries that the output drops. */
    for (int side = 0; side < 2; side++) {
        operand *X = side ? &B : &A, *Y = side ? &A : &B;
        int keep[N_LABELS] = {0}, drop[N_LABELS] = {0}, nd = 0;
        for (int L = 1; L < N_LABELS; L++) {
            if (!X->stride[L]) continue;
            if (!Y->stride[L] && !b->in_out[L]) drop[L] = 1, nd++;
            else keep[L] = 1;
        }
        if (!nd) continue;
        int kl[N_LABELS], rl[N_LABELS];
        int nk = labels_by_stride(X, keep, kl), nr = labels_by_stride(X, drop, rl);
        st = presum(c, dt, X, nk, kl, nr, rl, b->size, &tmp[side]);
        if (st) goto done;
    }

    /* Classify. Output order for batch, M and N; A's memory order for K. */
    int bl[N_LABELS], ml[N_LABELS], nl[N_LABELS], kl[N_LABELS], nbl = 0, nml = 0, nnl = 0, nkl = 0;
    for (int i = 0; i < b->out_n; i++) {
        int L = b->out[i];
        if (b->size[L] <= 1) continue;
        if (A.stride[L] && B.stride[L]) bl[nbl++] = L;
        else if (A.stride[L]) ml[nml++] = L;
        else nl[nnl++] = L;
    }
    {
        int want[N_LABELS] = {0};
        for (int L = 1; L < N_LABELS; L++) want[L] = A.stride[L] && B.stride[L] && !b->in_out[L];
        nkl = labels_by_stride(&A, want, kl);
    }
    if (nbl > OT_MAX_DIMS) {
        st = ot_errorf(OT_E_UNSUPPORTED, "%s: too many batch labels", ot_op_label(c));
        goto done;
    }

    /* A as [batch, M, K]: in place when M and K each merge with a unit stride on one side. */
    int64_t M = 1, K = 1, N = 1, sm = 0, sk = 0, sk2 = 0, sn = 0;
    int ta = 0, tb = 0;
    int64_t lda = 1, ldb = 1;
    int a_ok = merge_group(nml, ml, b->size, A.stride, &M, &sm) && merge_group(nkl, kl, b->size, A.stride, &K, &sk);
    if (a_ok) {
        if ((K == 1 || sk == 1) && (M == 1 || sm >= K)) ta = 0, lda = M == 1 ? K : sm;
        else if ((M == 1 || sm == 1) && (K == 1 || sk >= M)) ta = 1, lda = K == 1 ? M : sk;
        else a_ok = 0;
    }
    if (!a_ok) {
        int ls[N_LABELS], n = 0;
        for (int i = 0; i < nbl; i++) ls[n++] = bl[i];
        for (int i = 0; i < nml; i++) ls[n++] = ml[i];
        for (int i = 0; i < nkl; i++) ls[n++] = kl[i];
        st = make_contiguous(c, dt, &A, n, ls, b->size, &tmp[2]);
        if (st) goto done;
        merge_group(nml, ml, b->size, A.stride, &M, &sm);
        merge_group(nkl, kl, b->size, A.stride, &K, &sk);
        ta = 0;
        lda = K;
    }
    int b_ok = merge_group(nkl, kl, b->size, B.stride, &K, &sk2) && merge_group(nnl, nl, b->size, B.stride, &N, &sn);
    if (b_ok) {
        if ((N == 1 || sn == 1) && (K == 1 || sk2 >= N)) tb = 0, ldb = K == 1 ? N : sk2;
        else if ((K == 1 || sk2 == 1) && (N == 1 || sn >= K)) tb = 1, ldb = N == 1 ? K : sn;
        else b_ok = 0;
    }
    if (!b_ok) {
        int ls[N_LABELS], n = 0;
        for (int i = 0; i < nbl; i++) ls[n++] = bl[i];
        for (int i = 0; i < nkl; i++) ls[n++] = kl[i];
        for (int i = 0; i < nnl; i++) ls[n++] = nl[i];
        st = make_contiguous(c, dt, &B, n, ls, b->size, &tmp[3]);
        if (st) goto done;
        merge_group(nkl, kl, b->size, B.stride, &K, &sk2);
        merge_group(nnl, nl, b->size, B.stride, &N, &sn);
        tb = 0;
        ldb = N;
    }
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;

    /* Output: direct when its order (size > 1 labels) is batch, M, N. */
    int canon[N_LABELS], ncanon = 0, direct = 1;
    for (int i = 0; i < nbl; i++) canon[ncanon++] = bl[i];
    for (int i = 0; i < nml; i++) canon[ncanon++] = ml[i];
    for (int i = 0; i < nnl; i++) canon[ncanon++] = nl[i];
    {
        int j = 0;
        for (int i = 0; i < b->out_n; i++) {
            if (b->size[b->out[i]] <= 1) continue;
            if (j >= ncanon || canon[j] != b->out[i]) direct = 0;
            j++;
        }
    }
    int64_t nbatch = 1;
    for (int i = 0; i < nbl; i++) nbatch *= b->size[bl[i]];
    void *cbuf = c->out[0]->data;
    if (!direct) {
        int64_t cn = nbatch * M * N;
        cbuf = tmp[4] = malloc((size_t)(cn > 0 ? cn : 1) * esz);
        if (!cbuf) {
            st = ot_errorf(OT_E_NOMEM, "%s: out of memory for the Einsum product", ot_op_label(c));
            goto done;
        }
    }
    ot_gemm_batch g = {0};
    g.dtype = dt;
    g.M = M;
    g.N = N;
    g.K = K;
    g.trans_a = ta;
    g.trans_b = tb;
    g.lda = lda;
    g.ldb = ldb;
    g.nb = nbl;
    for (int i = 0; i < nbl; i++) {
        g.bdims[i] = b->size[bl[i]];
        g.a_bstride[i] = A.stride[bl[i]];
        g.b_bstride[i] = B.stride[bl[i]];
    }
    g.a = A.data;
    g.b = B.data;
    g.c = cbuf;
    st = ot_gemm_batch_run(&g);
    if (st) {
        st = ot_error_wrap(st, "%s: ", ot_op_label(c));
        goto done;
    }
    if (!direct) {
        /* Strides of each canonical label in cbuf, then permute into the output. */
        int64_t cst[N_LABELS] = {0}, s = 1;
        for (int i = ncanon - 1; i >= 0; i--) {
            cst[canon[i]] = s;
            s *= b->size[canon[i]];
        }
        int64_t od[OT_MAX_DIMS], os[OT_MAX_DIMS];
        for (int i = 0; i < b->out_n; i++) {
            od[i] = b->out_dims[i];
            os[i] = cst[b->out[i]];
        }
        ot_strided_sum(dt, c->out[0]->data, cbuf, b->out_n, od, os, 0, NULL, NULL);
    }
done:
    for (int i = 0; i < 5; i++) free(tmp[i]);
    return st;
}

ot_status ot_einsum_cpu(ot_op_ctx *c) {
    OT_TRY(einsum_dtype(c));
    einsum_bind b;
    OT_TRY(einsum_bind_shapes(c, &b));
    ot_dtype dt = c->in[0]->dtype;
    ot_tensor *y = c->out[0];
    int64_t total = ot_tensor_numel(y);
    if (total == 0) return OT_OK;
    /* A summed label of size 0 makes every output element an empty sum. */
    for (int L = 1; L < N_LABELS; L++)
        if (b.size[L] == 0 && !b.in_out[L]) {
            memset(y->data, 0, (size_t)total * ot_dtype_size(dt));
            return OT_OK;
        }
    if (b.n_ops == 1) {
        int64_t od[OT_MAX_DIMS], os[OT_MAX_DIMS], rd[OT_MAX_DIMS], rs[OT_MAX_DIMS];
        int nr = 0;
        for (int i = 0; i < b.out_n; i++) {
            od[i] = b.out_dims[i];
            os[i] = b.stride[0][b.out[i]];
        }
        for (int L = 1; L < N_LABELS; L++)
            if (b.in_op[0][L] && !b.in_out[L] && b.size[L] > 1) {
                rd[nr] = b.size[L];
                rs[nr] = b.stride[0][L];
                nr++;
            }
        ot_strided_sum(dt, y->data, c->in[0]->data, b.out_n, od, os, nr, rd, rs);
        return OT_OK;
    }
    return einsum_two(c, &b);
}
