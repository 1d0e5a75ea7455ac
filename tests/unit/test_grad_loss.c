/* test_grad_loss.c — the loss heads (runtime/ops/loss.c) and their gradient builders
 * (trainer/grad/grad_loss.c).
 *
 * Forward values are compared with formulas evaluated here in double by plain loops
 * (max-subtracted logsumexp, shifted targets, counted-token mean), never with the kernel's
 * own output: CausalLMLoss with ignore_index rows, an all-ignored batch and S = 1 (defined:
 * loss 0, gradient 0, no NaN), large logits in f32, int32 labels; CrossEntropyLoss on
 * [N, C] and [N, C, d] with a custom ignore_index; MSELoss with mixed pred/target dtypes.
 * A label outside [0, V) is an error naming the op, the value and its position.
 * The mean token accuracy (output 2) against a plain argmax loop (first maximum wins), with
 * ties both ways, ignored rows, f32 and f64, and the strided CrossEntropyLoss layout; its
 * gradient is dropped (loss + accuracy differentiates like the loss alone).
 * Gradient checks: f64, central differences with eps = 1e-6 (gradcheck.h), tolerance 1e-6
 * relative to max(1, |analytic|, |numeric|). The f32 gradient ops are compared with the
 * double formula (softmax − onehot)/count. A plan-level test checks that forward + backward
 * of CausalLMLoss needs one logits-sized buffer (the gradient) and nothing else that size. */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "onnxtune/runtime.h"
#include "ot_test.h"
#include "trainer/autodiff.h"
#include "trainer/grad/grad.h"

#define TOL 1e-6
#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

/* ---- helpers ---- */

static int64_t g_ignore = -100;
static int g_set_ignore;
static void ignore_attr(ot_graph *g, int node) {
    if (g_set_ignore) gc_attr_int(g, node, "ignore_index", g_ignore);
}


/* Runs one ai.onnxtune op on initializer inputs; copies its outputs into outs (owned by the
 * caller). Returns the plan/run status (the message stays in ot_last_error()). */
static ot_status run_op(const char *op, ot_tensor **ins, int n_in, int n_out, ot_tensor **outs) {
    ot_graph *g;
    OT_TRY(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    ot_graph_add_opset(g, OT_DOMAIN, 1);
    int in[8], out[8], node;
    char name[32];
    for (int i = 0; i < n_in; i++) {
        snprintf(name, sizeof name, "in%d", i);
        in[i] = gc_value(g, name);
        ot_tensor *c;
        ot_tensor_clone(&c, ins[i]);
        gc_set_init(g, in[i], c);
        g->values[in[i]].is_param = 1; /* not folded at plan time: the kernel runs in ot_plan_run */
    }
    for (int k = 0; k < n_out; k++) {
        snprintf(name, sizeof name, "out%d", k);
        out[k] = gc_value(g, name);
    }
    ot_graph_add_node(g, op, OT_DOMAIN, "loss_op", in, n_in, out, n_out, &node);
    ignore_attr(g, node);
    g->outputs = malloc(8 * sizeof(int));
    for (int k = 0; k < n_out; k++) g->outputs[g->n_outputs++] = out[k];
    ot_plan *p = NULL;
    ot_tensor o[8];
    ot_status st = ot_graph_toposort(g);
    if (st == OT_OK) st = ot_plan_create(g, NULL, &p);
    if (st == OT_OK) st = ot_plan_run(p, NULL, o);
    for (int k = 0; st == OT_OK && k < n_out; k++) ot_tensor_clone(&outs[k], &o[k]);
    ot_plan_free(p);
    ot_graph_free(g);
    return st;
}

static double at(const ot_tensor *t, int64_t i) { return ot_tensor_get_f64(t, i); }

/* Reference: cross-entropy of row `base` (C classes at stride `st`) against label l. */
static double ref_lse(const ot_tensor *x, int64_t base, int64_t C, int64_t st) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < C; j++) m = fmax(m, at(x, base + j * st));
    for (int64_t j = 0; j < C; j++) s += exp(at(x, base + j * st) - m);
    return m + log(s);
}

/* Reference causal-LM loss and gradient (dLoss = 1) over logits [B, S, V]. */
static double ref_causal(const ot_tensor *x, const int64_t *lab, int64_t B, int64_t S, int64_t V, int64_t ignore,
                         double *grad) {
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < S; t++)
            if (lab[b * S + t + 1] != ignore) cnt++;
    if (grad) memset(grad, 0, (size_t)(B * S * V) * sizeof *grad);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < S; t++) {
            int64_t l = lab[b * S + t + 1], base = (b * S + t) * V;
            if (l == ignore) continue;
            double lse = ref_lse(x, base, V, 1);
            sum += lse - at(x, base + l);
            if (grad) {
                for (int64_t j = 0; j < V; j++) grad[base + j] = exp(at(x, base + j) - lse) / (double)cnt;
                grad[base + l] -= 1.0 / (double)cnt;
            }
        }
    return cnt ? sum / (double)cnt : 0.0;
}

/* ---- CausalLMLoss forward ---- */

static void test_causal_forward(void) {
    const int64_t B = 2, S = 5, V = 7;
    const int64_t lab[10] = {3, 1, -100, 6, 0, /* */ 2, 4, 5, -100, -100};
    ot_tensor *x64 = gc_random(3, DIMS(2, 5, 7), 4.0), *l = gc_i64(2, DIMS(2, 5), lab);
    double expect = ref_causal(x64, lab, B, S, V, -100, NULL);
    for (int k = 0; k < 2; k++) {
        ot_tensor *x = k ? gc_convert(x64, OT_F32) : x64, *outs[2] = {0}, *ins[2] = {x, l};
        g_set_ignore = 0;
        CHECK_OK(run_op("CausalLMLoss", ins, 2, 2, outs));
        if (outs[0]) {
            CHECK(outs[0]->ndim == 0 && outs[0]->dtype == x->dtype);
            CHECK_NEAR(at(outs[0], 0), expect, k ? 2e-6 : 1e-13);
            /* lse per position: rows with a target hold logsumexp, the others 0 */
            CHECK(outs[1]->ndim == 2 && outs[1]->dims[0] == 2 && outs[1]->dims[1] == 5);
            for (int64_t r = 0; r < B * S; r++) {
                int has = r % S != S - 1 && lab[r + 1] != -100;
                CHECK_NEAR(at(outs[1], r), has ? ref_lse(x64, r * V, V, 1) : 0.0, k ? 2e-6 : 1e-13);
            }
        }
        ot_tensor_free(outs[0]), ot_tensor_free(outs[1]);
        if (k) ot_tensor_free(x);
    }
    /* int32 labels give the same loss */
    ot_tensor *l32 = gc_convert(l, OT_I32), *o32[1] = {0}, *ins32[2] = {x64, l32};
    CHECK_OK(run_op("CausalLMLoss", ins32, 2, 1, o32));
    if (o32[0]) CHECK_NEAR(at(o32[0], 0), expect, 1e-13);
    ot_tensor_free(o32[0]), ot_tensor_free(l32);
    ot_tensor_free(x64), ot_tensor_free(l);
}

/* Large logits (±1000 offsets) in f32: the max-subtracted logsumexp stays finite. */
static void test_causal_large_logits(void) {
    const int64_t lab[4] = {0, 2, 1, 3};
    ot_tensor *x64 = gc_random(3, DIMS(1, 4, 5), 3.0), *l = gc_i64(2, DIMS(1, 4), lab);
    for (int64_t i = 0; i < 20; i++) ((double *)x64->data)[i] += (i % 5 == 2) ? 1000.0 : -1000.0 * (i % 2);
    ot_tensor *x = gc_convert(x64, OT_F32), *x64r = gc_convert(x, OT_F64), *outs[1] = {0}, *ins[2] = {x, l};
    double expect = ref_causal(x64r, lab, 1, 4, 5, -100, NULL);
    CHECK_OK(run_op("CausalLMLoss", ins, 2, 1, outs));
    if (outs[0]) {
        CHECK(isfinite(at(outs[0], 0)));
        CHECK_NEAR(at(outs[0], 0), expect, 1e-5);
    }
    ot_tensor_free(outs[0]), ot_tensor_free(x), ot_tensor_free(x64r), ot_tensor_free(x64), ot_tensor_free(l);
}

/* Nothing to count: loss 0 and gradient 0 (not NaN). */
static void test_causal_nothing_counted(void) {
    const int64_t lab_all[6] = {-100, -100, -100, -100, -100, -100}, lab_s1[2] = {4, 1};
    for (int k = 0; k < 2; k++) {
        ot_tensor *x = k ? gc_random(3, DIMS(2, 1, 6), 1.0) : gc_random(3, DIMS(2, 3, 6), 1.0);
        ot_tensor *l = k ? gc_i64(2, DIMS(2, 1), lab_s1) : gc_i64(2, DIMS(2, 3), lab_all);
        ot_tensor *outs[2] = {0}, *ins[2] = {x, l};
        CHECK_OK(run_op("CausalLMLoss", ins, 2, 2, outs));
        if (outs[0]) CHECK(at(outs[0], 0) == 0.0);
        for (int64_t r = 0; outs[1] && r < ot_tensor_numel(outs[1]); r++) CHECK(at(outs[1], r) == 0.0);
        ot_tensor *one;
        ot_tensor_new(&one, OT_F64, 0, NULL);
        ((double *)one->data)[0] = 1.0;
        ot_tensor *gin[3] = {one, x, l}, *gout[1] = {0};
        CHECK_OK(run_op("CausalLMLossGrad", gin, 3, 1, gout));
        int nonzero = 0;
        for (int64_t i = 0; gout[0] && i < ot_tensor_numel(gout[0]); i++) nonzero += at(gout[0], i) != 0.0;
        CHECK(gout[0] && nonzero == 0);
        ot_tensor_free(gout[0]), ot_tensor_free(one);
        ot_tensor_free(outs[0]), ot_tensor_free(outs[1]), ot_tensor_free(x), ot_tensor_free(l);
    }
}

/* A label outside [0, V) that is not ignore_index fails, naming op, value and position. */
static void test_bad_label(void) {
    const int64_t lab[6] = {1, 2, 3, 0, 7, -100}; /* 7 at [1, 1] is out of range for V = 7 */
    ot_tensor *x = gc_random(3, DIMS(2, 3, 7), 1.0), *l = gc_i64(2, DIMS(2, 3), lab), *outs[1] = {0},
              *ins[2] = {x, l};
    ot_status st = run_op("CausalLMLoss", ins, 2, 1, outs);
    CHECK(st != OT_OK);
    CHECK(strstr(ot_last_error(), "CausalLMLoss") != NULL);
    CHECK(strstr(ot_last_error(), "label 7") != NULL);
    CHECK(strstr(ot_last_error(), "[1, 1]") != NULL);
    /* negative labels other than ignore_index too; the first bad position is reported */
    const int64_t lab2[6] = {1, -5, 3, 0, 9, 2};
    ot_tensor *l2 = gc_i64(2, DIMS(2, 3), lab2), *ins2[2] = {x, l2};
    CHECK(run_op("CausalLMLoss", ins2, 2, 1, outs) != OT_OK);
    CHECK(strstr(ot_last_error(), "label -5 at position [0, 1]") != NULL);
    /* position 0 of each sequence is never a target: an out-of-range label there is unused */
    const int64_t lab3[6] = {99, 1, 2, 99, 3, 4};
    ot_tensor *l3 = gc_i64(2, DIMS(2, 3), lab3), *ins3[2] = {x, l3};
    CHECK_OK(run_op("CausalLMLoss", ins3, 2, 1, outs));
    ot_tensor_free(outs[0]);
    /* CrossEntropyLoss names the position too */
    const int64_t lab4[2] = {1, 12};
    ot_tensor *x4 = gc_random(2, DIMS(2, 7), 1.0), *l4 = gc_i64(1, DIMS(2), lab4), *ins4[2] = {x4, l4};
    CHECK(run_op("CrossEntropyLoss", ins4, 2, 1, outs) != OT_OK);
    CHECK(strstr(ot_last_error(), "CrossEntropyLoss") && strstr(ot_last_error(), "label 12 at position [1]"));
    ot_tensor_free(x), ot_tensor_free(l), ot_tensor_free(l2), ot_tensor_free(l3), ot_tensor_free(x4),
        ot_tensor_free(l4);
}

/* ---- CrossEntropyLoss and MSELoss forward ---- */

static void test_cross_entropy_forward(void) {
    /* [N, C] with the default ignore_index, and [N, C, d] with ignore_index 0 */
    const int64_t lab2[5] = {2, -100, 0, 4, 1}, lab3[6] = {1, 0, 2, 2, 0, 1};
    ot_tensor *x2 = gc_random(2, DIMS(5, 5), 3.0), *l2 = gc_i64(1, DIMS(5), lab2);
    ot_tensor *x3 = gc_random(3, DIMS(2, 3, 3), 3.0), *l3 = gc_i64(2, DIMS(2, 3), lab3);
    double s = 0;
    int cnt = 0;
    for (int n = 0; n < 5; n++)
        if (lab2[n] != -100) s += ref_lse(x2, n * 5, 5, 1) - at(x2, n * 5 + lab2[n]), cnt++;
    double e2 = s / cnt;
    s = 0, cnt = 0;
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 3; i++)
            if (lab3[n * 3 + i] != 0) s += ref_lse(x3, n * 9 + i, 3, 3) - at(x3, n * 9 + lab3[n * 3 + i] * 3 + i), cnt++;
    double e3 = s / cnt;
    for (int k = 0; k < 2; k++) {
        ot_tensor *a = k ? gc_convert(x2, OT_F32) : x2, *b = k ? gc_convert(x3, OT_F32) : x3, *o[1] = {0};
        ot_tensor *ia[2] = {a, l2}, *ib[2] = {b, l3};
        g_set_ignore = 0;
        CHECK_OK(run_op("CrossEntropyLoss", ia, 2, 1, o));
        if (o[0]) CHECK_NEAR(at(o[0], 0), e2, k ? 2e-6 : 1e-13);
        ot_tensor_free(o[0]), o[0] = NULL;
        g_set_ignore = 1, g_ignore = 0;
        CHECK_OK(run_op("CrossEntropyLoss", ib, 2, 1, o));
        if (o[0]) CHECK_NEAR(at(o[0], 0), e3, k ? 2e-6 : 1e-13);
        g_set_ignore = 0;
        ot_tensor_free(o[0]);
        if (k) ot_tensor_free(a), ot_tensor_free(b);
    }
    ot_tensor_free(x2), ot_tensor_free(l2), ot_tensor_free(x3), ot_tensor_free(l3);
}

static void test_mse_forward(void) {
    ot_tensor *p = gc_random(2, DIMS(3, 7), 2.0), *t = gc_random(2, DIMS(3, 7), 2.0);
    double s = 0;
    for (int i = 0; i < 21; i++) s += (at(p, i) - at(t, i)) * (at(p, i) - at(t, i));
    const double e = s / 21;
    for (int k = 0; k < 3; k++) { /* f64/f64, f32/f32, f32 pred with f64 target */
        ot_tensor *pp = k ? gc_convert(p, OT_F32) : p, *tt = k == 1 ? gc_convert(t, OT_F32) : t, *o[1] = {0};
        ot_tensor *ins[2] = {pp, tt};
        CHECK_OK(run_op("MSELoss", ins, 2, 1, o));
        if (o[0]) CHECK_NEAR(at(o[0], 0), e, k ? 2e-6 : 1e-13);
        ot_tensor_free(o[0]);
        if (pp != p) ot_tensor_free(pp);
        if (tt != t) ot_tensor_free(tt);
    }
    /* a shape mismatch is an error naming the op */
    ot_tensor *t2 = gc_random(2, DIMS(7, 3), 1.0), *ins[2] = {p, t2}, *o[1] = {0};
    CHECK(run_op("MSELoss", ins, 2, 1, o) != OT_OK);
    CHECK(strstr(ot_last_error(), "MSELoss") != NULL);
    ot_tensor_free(t2), ot_tensor_free(p), ot_tensor_free(t);
}

/* ---- mean token accuracy (optional output 2) ---- */

/* Reference argmax by a plain loop: the first index holding the maximum. */
static int64_t ref_argmax(const ot_tensor *x, int64_t base, int64_t C, int64_t st) {
    int64_t best = 0;
    for (int64_t j = 1; j < C; j++)
        if (at(x, base + j * st) > at(x, base + best * st)) best = j;
    return best;
}

static void test_accuracy(void) {
    /* causal [2, 6, 5]: some labels set to the row's argmax (the shifted target), others not;
     * ignore_index rows and the last position of each sequence are not counted. */
    const int64_t B = 2, S = 6, V = 5;
    ot_tensor *x = gc_random(3, DIMS(2, 6, 5), 3.0);
    /* row (0, 1) ties: classes 1 and 3 share the maximum, label 3 (a miss: argmax is 1);
     * row (1, 2) ties: classes 0 and 4, label 0 (a hit) */
    double *xd = x->data;
    for (int j = 0; j < 5; j++) xd[(0 * 6 + 1) * 5 + j] = 0.5 * j - 3, xd[(1 * 6 + 2) * 5 + j] = -1.0;
    xd[(0 * 6 + 1) * 5 + 1] = xd[(0 * 6 + 1) * 5 + 3] = 4.0;
    xd[(1 * 6 + 2) * 5 + 0] = xd[(1 * 6 + 2) * 5 + 4] = 2.0;
    int64_t lab[12];
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < S; t++) {
            int64_t am = ref_argmax(x, (b * S + t) * V, V, 1);
            lab[b * S + t + 1] = (b + t) % 2 ? am : (am + 1) % V;
        }
    lab[0] = 4, lab[6] = 2;    /* position 0 is never a target */
    lab[0 * 6 + 2] = 3;        /* row (0, 1): the tie's higher index -> a miss */
    lab[1 * 6 + 3] = 0;        /* row (1, 2): the tie's lower index -> a hit */
    lab[0 * 6 + 4] = lab[1 * 6 + 5] = -100;
    int64_t hit = 0, cnt = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < S; t++) {
            int64_t l = lab[b * S + t + 1];
            if (l == -100) continue;
            cnt++;
            hit += ref_argmax(x, (b * S + t) * V, V, 1) == l;
        }
    const double expect = (double)hit / (double)cnt;
    CHECK(cnt == 8 && hit > 0 && hit < cnt); /* the case is not degenerate */
    ot_tensor *l = gc_i64(2, DIMS(2, 6), lab);
    double eloss = ref_causal(x, lab, B, S, V, -100, NULL);
    for (int k = 0; k < 2; k++) { /* f64, f32 */
        ot_tensor *xx = k ? gc_convert(x, OT_F32) : x, *ins[2] = {xx, l}, *o[3] = {0};
        CHECK_OK(run_op("CausalLMLoss", ins, 2, 3, o));
        if (o[2]) {
            CHECK(o[2]->dtype == OT_F32 && o[2]->ndim == 0);
            CHECK_NEAR(at(o[2], 0), expect, 1e-7);
            CHECK_NEAR(at(o[0], 0), eloss, k ? 2e-6 : 1e-13); /* the loss is unchanged */
        }
        for (int i = 0; i < 3; i++) ot_tensor_free(o[i]);
        if (k) ot_tensor_free(xx);
    }
    /* non-finite logits: the first NaN is the argmax (as torch.argmax), a +inf the first +inf,
     * an all -inf row index 0; the same in f64 and in f32 (whose rows take the fused path) */
    {
        const double nan = NAN, inf = INFINITY;
        const double rows[4][4] = {{1, nan, 5, nan}, {1, inf, 3, inf}, {-inf, -inf, -inf, -inf}, {0, 2, 2, 1}};
        const int64_t labs[4] = {1, 1, 0, 2}; /* hit, hit, hit, miss (the tie's lower index is 1) */
        ot_tensor *xn, *ln4 = gc_i64(1, DIMS(4), labs);
        CHECK_OK(ot_tensor_new(&xn, OT_F64, 2, DIMS(4, 4)));
        memcpy(xn->data, rows, sizeof rows);
        for (int k = 0; k < 2; k++) {
            ot_tensor *xx = k ? gc_convert(xn, OT_F32) : xn, *ins[2] = {xx, ln4}, *o[3] = {0};
            CHECK_OK(run_op("CrossEntropyLoss", ins, 2, 3, o));
            if (o[2]) CHECK(at(o[2], 0) == 0.75);
            for (int i = 0; i < 3; i++) ot_tensor_free(o[i]);
            if (k) ot_tensor_free(xx);
        }
        ot_tensor_free(xn), ot_tensor_free(ln4);
    }
    /* nothing counted: accuracy 0, not NaN */
    const int64_t none[12] = {1, -100, -100, -100, -100, -100, 2, -100, -100, -100, -100, -100};
    ot_tensor *ln = gc_i64(2, DIMS(2, 6), none), *insn[2] = {x, ln}, *on[3] = {0};
    CHECK_OK(run_op("CausalLMLoss", insn, 2, 3, on));
    if (on[2]) CHECK(at(on[2], 0) == 0.0);
    for (int i = 0; i < 3; i++) ot_tensor_free(on[i]);
    ot_tensor_free(ln), ot_tensor_free(l), ot_tensor_free(x);

    /* CrossEntropyLoss [N, C, d] = [3, 4, 2] (classes at stride 2), ignore_index 1 */
    ot_tensor *x3 = gc_random(3, DIMS(3, 4, 2), 3.0);
    int64_t lab3[6];
    for (int64_t n = 0; n < 3; n++)
        for (int64_t i = 0; i < 2; i++) {
            int64_t am = ref_argmax(x3, n * 8 + i, 4, 2);
            lab3[n * 2 + i] = (n + i) % 2 ? am : (am + 2) % 4;
        }
    lab3[5] = 1;
    hit = cnt = 0;
    for (int64_t r = 0; r < 6; r++) {
        if (lab3[r] == 1) continue;
        cnt++;
        hit += ref_argmax(x3, (r / 2) * 8 + r % 2, 4, 2) == lab3[r];
    }
    ot_tensor *l3 = gc_i64(2, DIMS(3, 2), lab3);
    g_set_ignore = 1, g_ignore = 1;
    for (int k = 0; k < 2; k++) {
        ot_tensor *xx = k ? gc_convert(x3, OT_F32) : x3, *ins[2] = {xx, l3}, *o[3] = {0};
        CHECK_OK(run_op("CrossEntropyLoss", ins, 2, 3, o));
        if (o[2]) CHECK_NEAR(at(o[2], 0), (double)hit / (double)cnt, 1e-7);
        for (int i = 0; i < 3; i++) ot_tensor_free(o[i]);
        if (k) ot_tensor_free(xx);
    }
    g_set_ignore = 0;
    ot_tensor_free(l3), ot_tensor_free(x3);
}

/* The accuracy is not differentiable: with loss + accuracy as the objective, the gradient
 * equals the loss's alone (the reference formula), and the lse output (1) may stay unwired. */
static void test_accuracy_no_gradient(void) {
    const int64_t B = 2, S = 4, V = 6;
    int64_t lab[8] = {0, 1, 5, -100, 3, 2, 2, 4};
    ot_tensor *x64 = gc_random(3, DIMS(2, 4, 6), 3.0), *x = gc_convert(x64, OT_F32), *x64r = gc_convert(x, OT_F64);
    double eg[48];
    ref_causal(x64r, lab, B, S, V, -100, eg);
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    ot_graph_add_opset(g, OT_DOMAIN, 1);
    int vx = gc_value(g, "logits"), vl = gc_value(g, "labels"), vloss = gc_value(g, "loss"),
        vacc = gc_value(g, "acc"), vtot = gc_value(g, "total");
    gc_set_init(g, vx, x);
    gc_set_init(g, vl, gc_i64(2, DIMS(2, 4), lab));
    g->values[vx].is_param = 1;
    int in[2] = {vx, vl}, outs3[3] = {vloss, -1, vacc}, sum_in[2] = {vloss, vacc};
    ot_graph_add_node(g, "CausalLMLoss", OT_DOMAIN, "lm_loss", in, 2, outs3, 3, NULL);
    ot_graph_add_node(g, "Add", "", "total", sum_in, 2, &vtot, 1, NULL);
    gc_output(g, vtot);
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grad = -1;
    CHECK_OK(ot_autodiff(g, meta, vtot, &vx, 1, NULL, &grad));
    ot_plan *p = NULL;
    CHECK_OK(ot_plan_create(g, NULL, &p));
    ot_tensor outs[4];
    int gi = -1;
    for (int o = 0; o < g->n_outputs; o++)
        if (g->outputs[o] == grad) gi = o;
    CHECK(gi > 0);
    if (p && gi > 0 && ot_plan_run(p, NULL, outs) == OT_OK) {
        int bad = 0;
        for (int64_t i = 0; i < B * S * V; i++) bad += fabs(((float *)outs[gi].data)[i] - eg[i]) > 1e-6;
        CHECK(bad == 0);
    } else {
        CHECK(0);
    }
    free(meta);
    ot_plan_free(p);
    ot_graph_free(g);
    ot_tensor_free(x64), ot_tensor_free(x64r);
}

/* ---- gradient checks (f64) ---- */

static int check_loss(const char *op, ot_tensor *a, int da, ot_tensor *b, int db) {
    gc_input in[2] = {{"a", a, da}, {"b", b, db}};
    return gc_check_free(op, OT_DOMAIN, 17, in, 2, 1, ignore_attr, TOL, "%s", op);
}

static void test_gradients(void) {
    g_set_ignore = 0;
    const int64_t lab[10] = {3, 1, -100, 6, 0, 2, 4, 5, -100, -100};
    CHECK(check_loss("CausalLMLoss", gc_random(3, DIMS(2, 5, 7), 3.0), 1, gc_i64(2, DIMS(2, 5), lab), 0) == 0);
    const int64_t lab1[4] = {0, 1, 2, 3};
    CHECK(check_loss("CausalLMLoss", gc_random(2, DIMS(4, 5), 3.0), 1, gc_i64(1, DIMS(4), lab1), 0) == 0);
    const int64_t lab2[5] = {2, -100, 0, 4, 1};
    CHECK(check_loss("CrossEntropyLoss", gc_random(2, DIMS(5, 5), 3.0), 1, gc_i64(1, DIMS(5), lab2), 0) == 0);
    const int64_t lab3[6] = {1, 0, 2, -100, 0, 1};
    CHECK(check_loss("CrossEntropyLoss", gc_random(3, DIMS(2, 3, 3), 3.0), 1, gc_i64(2, DIMS(2, 3), lab3), 0) == 0);
    const int64_t lab4[5] = {2, 1, 0, 4, 2}; /* ignore_index 2: rows 0 and 4 */
    g_set_ignore = 1, g_ignore = 2;
    CHECK(check_loss("CrossEntropyLoss", gc_random(2, DIMS(5, 5), 3.0), 1, gc_i64(1, DIMS(5), lab4), 0) == 0);
    g_set_ignore = 0;
    CHECK(check_loss("MSELoss", gc_random(2, DIMS(3, 4), 1.0), 1, gc_random(2, DIMS(3, 4), 1.0), 0) == 0);
    CHECK(check_loss("MSELoss", gc_random(2, DIMS(3, 4), 1.0), 1, gc_random(2, DIMS(3, 4), 1.0), 1) == 0);
    CHECK(check_loss("MSELoss", gc_random(1, DIMS(5), 1.0), 0, gc_random(1, DIMS(5), 1.0), 1) == 0);
}

/* ---- f32 backward vs the double formula, through autodiff; and the memory bound ---- */

static void test_causal_backward_f32(void) {
    const int64_t B = 3, S = 6, V = 301;
    int64_t lab[18];
    for (int i = 0; i < 18; i++) lab[i] = (i * 37) % V;
    lab[4] = lab[11] = -100;
    ot_tensor *x64 = gc_random(3, DIMS(3, 6, 301), 5.0), *x = gc_convert(x64, OT_F32), *x64r = gc_convert(x, OT_F64);
    double *eg = malloc((size_t)(B * S * V) * sizeof *eg);
    double el = ref_causal(x64r, lab, B, S, V, -100, eg);
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    ot_graph_add_opset(g, "", 17);
    ot_graph_add_opset(g, OT_DOMAIN, 1);
    int vx = gc_value(g, "logits"), vl = gc_value(g, "labels"), vloss = gc_value(g, "loss");
    gc_set_init(g, vx, x);
    gc_set_init(g, vl, gc_i64(2, DIMS(3, 6), lab));
    g->values[vx].is_param = 1;
    int in[2] = {vx, vl};
    ot_graph_add_node(g, "CausalLMLoss", OT_DOMAIN, "lm_loss", in, 2, &vloss, 1, NULL);
    gc_output(g, vloss);
    ot_plan *p = NULL;
    ot_tensor *meta;
    CHECK_OK(gc_plan_meta(g, &meta));
    int grad = -1, n_fwd = g->n_nodes;
    CHECK_OK(ot_autodiff(g, meta, vloss, &vx, 1, NULL, &grad));
    /* the backward is the one fused op (plus the naming Identity), reading the saved lse */
    int fused = 0;
    for (int i = n_fwd; i < g->n_nodes; i++) fused += strcmp(g->nodes[i].op_type, "CausalLMLossGrad") == 0;
    CHECK(fused == 1);
    CHECK_OK(ot_plan_create(g, NULL, &p));
    ot_tensor outs[4];
    CHECK_OK(ot_plan_run(p, NULL, outs));
    CHECK_NEAR(at(&outs[0], 0), el, 2e-6);
    int bad = 0;
    for (int64_t i = 0; i < B * S * V; i++) bad += fabs(((float *)outs[1].data)[i] - eg[i]) > 1e-6 * fmax(1, fabs(eg[i])) + 1e-8;
    CHECK(bad == 0);
    /* memory: one logits-sized buffer (the gradient) plus the small lse, nothing else */
    ot_plan_stats st;
    ot_plan_get_stats(p, &st);
    size_t logits_bytes = (size_t)(B * S * V) * sizeof(float);
    CHECK(st.arena_bytes <= logits_bytes + 4096);
    fprintf(stderr, "  arena %zu bytes for logits of %zu bytes\n", st.arena_bytes, logits_bytes);
    free(meta), free(eg);
    ot_plan_free(p);
    ot_graph_free(g);
    ot_tensor_free(x64), ot_tensor_free(x64r);
}

int main(void) {
    OT_RUN(test_causal_forward);
    OT_RUN(test_causal_large_logits);
    OT_RUN(test_causal_nothing_counted);
    OT_RUN(test_bad_label);
    OT_RUN(test_cross_entropy_forward);
    OT_RUN(test_mse_forward);
    OT_RUN(test_accuracy);
    OT_RUN(test_accuracy_no_gradient);
    OT_RUN(test_gradients);
    OT_RUN(test_causal_backward_f32);
    return OT_TEST_EXIT();
}
