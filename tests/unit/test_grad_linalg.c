/* test_grad_linalg.c — gradient checks for the linalg builders (trainer/grad/grad_linalg.c):
 * MatMul with 1-D, 2-D, batched and broadcast operands (and with only one operand
 * differentiable), Gemm over every transA/transB/alpha/beta combination and every C
 * broadcast shape, Einsum for matmul-like, transposing, reducing, broadcast-ellipsis and
 * implicit-output equations. A structural test checks that the [B, S, K] x [K, N] weight
 * gradient is emitted as one Gemm over B·S rows (no batched product, no reduction).
 *
 * Gradient checks: f64 random inputs, central differences with eps = 1e-6 (gradcheck.h),
 * tolerance 1e-6 relative to max(1, |analytic|, |numeric|). */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "onnxtune/runtime.h"
#include "ot_test.h"
#include "trainer/autodiff.h"

#define TOL 1e-6
#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define NDIMS(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* ---- MatMul ---- */

static int check_matmul(int an, const int64_t *ad, int bn, const int64_t *bd, int da, int db) {
    ot_tensor *a = gc_random(an, ad, 1.0), *b = gc_random(bn, bd, 1.0);
    gc_input in[2] = {{"a", a, da}, {"b", b, db}};
    char s1[64], s2[64];
    return gc_check_free("MatMul", "", 13, in, 2, 1, NULL, TOL, "MatMul %s x %s", ot_shape_str(s1, sizeof s1, an, ad),
                         ot_shape_str(s2, sizeof s2, bn, bd));
}
#define MM(A, B) check_matmul(NDIMS A, DIMS A, NDIMS B, DIMS B, 1, 1)

static void test_matmul(void) {
    CHECK(MM((4), (4)) == 0);                 /* 1-D · 1-D: a scalar */
    CHECK(MM((4), (4, 3)) == 0);              /* 1-D · 2-D */
    CHECK(MM((3, 4), (4)) == 0);              /* 2-D · 1-D */
    CHECK(MM((3, 4), (4, 5)) == 0);           /* 2-D · 2-D */
    CHECK(MM((2, 3, 4), (4, 5)) == 0);        /* batched · weight: one GEMM over rows */
    CHECK(MM((2, 3, 3, 4), (4, 2)) == 0);     /* two batch dims · weight */
    CHECK(MM((2, 3, 4), (4)) == 0);           /* batched · 1-D */
    CHECK(MM((2, 3, 4), (1, 4, 5)) == 0);     /* B's batch dims all 1 */
    CHECK(MM((3, 4), (2, 4, 5)) == 0);        /* matrix · batched */
    CHECK(MM((4), (2, 4, 5)) == 0);           /* 1-D · batched */
    CHECK(MM((2, 3, 4), (2, 4, 5)) == 0);     /* batched · batched */
    CHECK(MM((2, 1, 3, 4), (3, 4, 5)) == 0);  /* batch broadcast both ways */
    CHECK(MM((1, 3, 4), (2, 4, 5)) == 0);     /* A broadcast over B's batch */
    CHECK(MM((2, 3, 4), (2, 1, 4, 5)) == 0);  /* B broadcast, higher rank */
    CHECK(MM((1, 1), (1, 1)) == 0);           /* degenerate */
    /* one operand differentiable at a time */
    CHECK(check_matmul(3, DIMS(2, 3, 4), 2, DIMS(4, 5), 0, 1) == 0);
    CHECK(check_matmul(3, DIMS(2, 3, 4), 2, DIMS(4, 5), 1, 0) == 0);
    CHECK(check_matmul(3, DIMS(2, 3, 4), 3, DIMS(2, 4, 5), 0, 1) == 0);
    CHECK(check_matmul(2, DIMS(3, 4), 3, DIMS(2, 4, 5), 1, 0) == 0);
}

/* ---- Gemm ---- */

static int g_ta, g_tb;
static float g_alpha, g_beta;
static int g_set_alpha, g_set_beta;

static void gemm_attrs(ot_graph *g, int node) {
    if (g_ta) gc_attr_int(g, node, "transA", 1);
    if (g_tb) gc_attr_int(g, node, "transB", 1);
    if (g_set_alpha) gc_attr_float(g, node, "alpha", g_alpha);
    if (g_set_beta) gc_attr_float(g, node, "beta", g_beta);
}

static int check_gemm(int ta, int tb, int set_alpha, float alpha, int set_beta, float beta, int cn,
                      const int64_t *cd) {
    const int64_t M = 3, K = 4, N = 5;
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
    ot_tensor *a = gc_random(2, ad, 1.0), *b = gc_random(2, bd, 1.0), *cc = cn >= 0 ? gc_random(cn, cd, 1.0) : NULL;
    g_ta = ta, g_tb = tb, g_alpha = alpha, g_beta = beta, g_set_alpha = set_alpha, g_set_beta = set_beta;
    gc_input in[3] = {{"a", a, 1}, {"b", b, 1}, {"c", cc, 1}};
    return gc_check_free("Gemm", "", 13, in, cc ? 3 : 2, 1, gemm_attrs, TOL, "Gemm transA %d transB %d alpha %g beta %g C rank %d",
                         ta, tb, set_alpha ? alpha : 1.0, set_beta ? beta : 1.0, cn);
}

static void test_gemm(void) {
    /* C shapes that broadcast to [M, N] = [3, 5]: none, full, row, row 2-D, column, scalar, [1, 1] */
    static const int64_t c_full[2] = {3, 5}, c_row[1] = {5}, c_row2[2] = {1, 5}, c_col[2] = {3, 1},
                         c_one[2] = {1, 1};
    struct { int n; const int64_t *d; } cs[7] = {{-1, NULL}, {2, c_full}, {1, c_row}, {2, c_row2},
                                                 {2, c_col}, {0, NULL}, {2, c_one}};
    static const float alphas[2] = {1.0f, 0.5f}, betas[3] = {1.0f, 0.25f, 0.0f};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int ai = 0; ai < 2; ai++)
                for (int bi = 0; bi < 3; bi++)
                    for (int ci = 0; ci < 7; ci++) {
                        if (ci == 0 && bi > 0) continue; /* beta without C means nothing */
                        CHECK(check_gemm(ta, tb, ai > 0, alphas[ai], bi > 0, betas[bi], cs[ci].n, cs[ci].d) == 0);
                    }
}

/* ---- Einsum ---- */

static const char *g_eq;
static void einsum_attrs(ot_graph *g, int node) { gc_attr_string(g, node, "equation", g_eq); }

static int check_einsum(const char *eq, int an, const int64_t *ad, int bn, const int64_t *bd) {
    ot_tensor *a = gc_random(an, ad, 1.0), *b = bn >= 0 ? gc_random(bn, bd, 1.0) : NULL;
    gc_input in[2] = {{"a", a, 1}, {"b", b, 1}};
    g_eq = eq;
    return gc_check_free("Einsum", "", 13, in, b ? 2 : 1, 1, einsum_attrs, TOL, "Einsum '%s'", eq);
}
#define ES2(EQ, A, B) check_einsum(EQ, NDIMS A, DIMS A, NDIMS B, DIMS B)
#define ES1(EQ, A) check_einsum(EQ, NDIMS A, DIMS A, -1, NULL)

static void test_einsum(void) {
    CHECK(ES2("ij,jk->ik", (3, 4), (4, 5)) == 0);
    CHECK(ES2("ij,jk", (3, 4), (4, 5)) == 0);              /* implicit output "ik" */
    CHECK(ES2("ij,kj->ik", (3, 4), (5, 4)) == 0);          /* B transposed */
    CHECK(ES2("ji,jk->ik", (4, 3), (4, 5)) == 0);          /* A transposed */
    CHECK(ES2("bij,bjk->bik", (2, 3, 4), (2, 4, 5)) == 0); /* batched */
    CHECK(ES2("bsk,kn->bsn", (2, 3, 4), (4, 5)) == 0);     /* the weight case */
    CHECK(ES2("bsk,nk->bsn", (2, 3, 4), (5, 4)) == 0);     /* weight stored transposed */
    CHECK(ES2("...ij,jk->...ik", (2, 3, 4), (4, 5)) == 0);
    CHECK(ES2("...ij,...jk->...ik", (2, 1, 3, 4), (3, 4, 5)) == 0); /* ellipsis broadcast */
    CHECK(ES2("bhqd,bhkd->bhqk", (1, 2, 3, 4), (1, 2, 5, 4)) == 0); /* attention scores */
    CHECK(ES2("ij,j->i", (3, 4), (4)) == 0);
    CHECK(ES2("i,i->", (4), (4)) == 0);                    /* dot product */
    CHECK(ES2("ij,ij->i", (3, 4), (3, 4)) == 0);           /* row-wise dot */
    CHECK(ES2("i,j->ij", (3), (4)) == 0);                  /* outer product */
    CHECK(ES2("ijk,jl->il", (2, 3, 4), (3, 5)) == 0);      /* k summed inside A only */
    CHECK(ES2("Ab,bC->AC", (3, 4), (4, 2)) == 0);          /* upper-case labels */
    CHECK(ES1("ij->ji", (3, 4)) == 0);                     /* transpose */
    CHECK(ES1("ij->i", (3, 4)) == 0);                      /* row sums: broadcast back */
    CHECK(ES1("ijk->kj", (2, 3, 4)) == 0);
    CHECK(ES1("...ij->...ji", (2, 3, 4)) == 0);
}

/* ---- structure: the weight gradient of [B, S, K] x [K, N] is one Gemm over B·S rows ---- */

static void test_weight_grad_is_one_gemm(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    int64_t xd[3] = {2, 8, 16}, wd[2] = {16, 32};
    ot_tensor *x = gc_random(3, xd, 1.0), *w = gc_random(2, wd, 1.0);
    int vx = gc_value(g, "x"), vw = gc_value(g, "w"), vy = gc_value(g, "y"), vl = gc_value(g, "loss");
    gc_set_init(g, vx, x);
    gc_set_init(g, vw, w);
    g->values[vw].is_param = 1;
    int in[2] = {vx, vw};
    ot_graph_add_node(g, "MatMul", "", "proj", in, 2, &vy, 1, NULL);
    gc_sum_all(g, "sum", vy, vl);
    gc_output(g, vl);
    ot_plan *p = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int n_fwd = g->n_nodes, grad = -1;
    CHECK_OK(ot_autodiff(g, meta, vl, &vw, 1, NULL, &grad));
    int gemms = 0, others = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ot_node *n = &g->nodes[i];
        if (strncmp(n->name, "proj/grad/", 10) != 0) continue;
        if (strcmp(n->op_type, "Gemm") == 0) {
            gemms++;
            const ot_attr *ta = ot_node_attr(n, "transA");
            CHECK(ta && ta->i == 1);
            /* A operand: x viewed as [B*S, K] = [16, 16] */
            const ot_value *av = &g->values[n->in[0]];
            (void)av;
        } else if (strcmp(n->op_type, "Reshape") != 0) {
            others++;
            fprintf(stderr, "  unexpected %s in the weight gradient\n", n->op_type);
        }
    }
    CHECK(gemms == 1);
    CHECK(others == 0);
    CHECK(g->n_nodes > n_fwd);
    /* and its value: dW = xᵀ · 1 summed over rows, checked against a direct loop */
    CHECK_OK(ot_plan_create(g, NULL, &p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(p, NULL, outs));
    const double *dw = outs[1].data, *xv = x->data;
    int bad = 0;
    for (int k = 0; k < 16; k++) {
        double s = 0;
        for (int r = 0; r < 16; r++) s += xv[r * 16 + k];
        for (int nn = 0; nn < 32; nn++) bad += fabs(dw[k * 32 + nn] - s) > 1e-12;
    }
    CHECK(bad == 0);
    CHECK(outs[1].ndim == 2 && outs[1].dims[0] == 16 && outs[1].dims[1] == 32);
    free(meta);
    ot_plan_free(p);
    ot_graph_free(g);
}

int main(void) {
    OT_RUN(test_matmul);
    OT_RUN(test_gemm);
    OT_RUN(test_einsum);
    OT_RUN(test_weight_grad_is_one_gemm);
    return OT_TEST_EXIT();
}
