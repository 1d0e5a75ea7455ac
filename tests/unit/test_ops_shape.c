/* test_ops_shape.c — the shape op family (runtime/ops/shape*.c) through its registry entries.
 *
 * A tiny harness builds an ot_node with attributes by hand, runs the entry's parse, infer
 * and cpu the way the planner does (value inputs carry data at infer time), and compares
 * with expectations computed independently: literal arrays worked out by hand or with
 * numpy (noted where so), or naive index loops written here (multi-index walks, not the
 * kernels' strided engine). Sizes are chosen to cross the kernels' branches: tiles with
 * remainders, parallel thresholds, every element size (1, 2, 4, 8 bytes), empty tensors. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "op_harness.h"
#include "runtime/ops/shape.h"

/* ------------------------------------------------------------------------------------------ */
/* Harness. */

typedef struct {
    ot_node node;
    ot_attr attrs[8];
    ot_tensor *owned_t[4];
    int n_owned;
} tnode;

static void tn_init(tnode *t, const char *op, const char *name) {
    memset(t, 0, sizeof *t);
    t->node.op_type = (char *)op;
    t->node.name = (char *)name;
    t->node.domain = (char *)"";
    t->node.attrs = t->attrs;
}

static ot_attr *tn_add(tnode *t, const char *name, ot_attr_type ty) {
    ot_attr *a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = (char *)name;
    a->type = ty;
    return a;
}
static void tn_int(tnode *t, const char *name, int64_t v) { tn_add(t, name, OT_ATTR_INT)->i = v; }
static void tn_float(tnode *t, const char *name, float v) { tn_add(t, name, OT_ATTR_FLOAT)->f = v; }
static void tn_ints(tnode *t, const char *name, int64_t *v, int n) {
    ot_attr *a = tn_add(t, name, OT_ATTR_INTS);
    a->ints = v;
    a->n = n;
}
static void tn_floats(tnode *t, const char *name, float *v, int n) {
    ot_attr *a = tn_add(t, name, OT_ATTR_FLOATS);
    a->floats = v;
    a->n = n;
}
static void tn_tensor(tnode *t, const char *name, ot_tensor *v) { tn_add(t, name, OT_ATTR_TENSOR)->t = v; }
static void tn_string(tnode *t, const char *name, const char *s) { tn_add(t, name, OT_ATTR_STRING)->s = (char *)s; }

#define D(...) ((int64_t[]){__VA_ARGS__})
#define NARG(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
static ot_tensor *i64v(int n, const int64_t *v) { return oh_tensor(OT_I64, 1, (int64_t[]){n}, v); }
#define I64S(...) i64v(NARG(__VA_ARGS__), D(__VA_ARGS__))
static ot_tensor *i64s(int64_t v) { return oh_tensor(OT_I64, 0, NULL, &v); }

/* f32 tensor with values 0, 1, 2, ... */
static ot_tensor *iota_f32(int ndim, const int64_t *dims) {
    ot_tensor *t = oh_tensor(OT_F32, ndim, dims, NULL);
    float *p = t->data;
    for (int64_t i = 0; i < ot_tensor_numel(t); i++) p[i] = (float)i;
    return t;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static ot_tensor *rand_t(ot_dtype dt, int ndim, const int64_t *dims) {
    ot_tensor *t = oh_tensor(dt, ndim, dims, NULL);
    unsigned char *p = t->data;
    size_t nb = ot_tensor_nbytes(t);
    for (size_t i = 0; i < nb; i++) p[i] = (unsigned char)rnd();
    if (dt == OT_F32) {
        float *f = t->data;
        for (int64_t i = 0; i < ot_tensor_numel(t); i++) f[i] = (float)(rnd() % 2001) / 100.0f - 10.0f;
    }
    return t;
}

static const ot_op_def *find_def(const char *op, int opset) {
    for (int i = 0; i < ot_ops_shape_count; i++) {
        const ot_op_def *d = &ot_ops_shape[i];
        if (strcmp(d->op_type, op) == 0 && opset >= d->since && opset <= d->until) return d;
    }
    return NULL;
}

typedef struct {
    ot_tensor out[8];
    int n_out;
} result;

static void res_free(result *r) {
    for (int i = 0; i < r->n_out; i++) free(r->out[i].data), r->out[i].data = NULL;
}

/* Runs parse, infer and (unless infer_only) cpu through oh_exec (outputs pattern-filled,
 * guard bytes checked). in[i] may be NULL (omitted). Output k is omitted when omit_mask has
 * bit k. The outputs' data is malloc'd here (res_free). */
static ot_status run_ex(tnode *t, int opset, int n_in, ot_tensor **in, int n_out, unsigned omit_mask, result *r,
                        int infer_only) {
    memset(r, 0, sizeof *r);
    r->n_out = n_out;
    const ot_op_def *def = find_def(t->node.op_type, opset);
    if (!def) return ot_errorf(OT_E_UNSUPPORTED, "test: no entry for %s at opset %d", t->node.op_type, opset);
    OT_TRY(oh_check_arity(def, n_in));
    t->node.n_in = n_in;
    t->node.n_out = n_out;
    ot_tensor *outp[8];
    for (int k = 0; k < n_out; k++) outp[k] = (omit_mask >> k) & 1 ? NULL : &r->out[k];
    const ot_tensor *inp[8];
    for (int k = 0; k < n_in; k++) inp[k] = in[k];
    return oh_exec(def, &t->node, opset, n_in, inp, n_out, outp, infer_only);
}
static ot_status run(tnode *t, int opset, int n_in, ot_tensor **in, int n_out, result *r) {
    return run_ex(t, opset, n_in, in, n_out, 0, r, 0);
}

static int shape_is(const ot_tensor *t, int ndim, const int64_t *dims) {
    return ot_shape_equal(t->ndim, t->dims, ndim, dims);
}
#define SHAPE_IS(t, ...) shape_is((t), NARG(__VA_ARGS__), D(__VA_ARGS__))

static int f32_eq(const ot_tensor *t, const float *v, int64_t n) {
    if (t->dtype != OT_F32 || ot_tensor_numel(t) != n) return 0;
    for (int64_t i = 0; i < n; i++)
        if (((const float *)t->data)[i] != v[i]) {
            fprintf(stderr, "  element %lld: %g != %g\n", (long long)i, ((const float *)t->data)[i], v[i]);
            return 0;
        }
    return 1;
}
#define F32_EQ(t, ...) f32_eq((t), (float[]){__VA_ARGS__}, (int64_t)(sizeof((float[]){__VA_ARGS__}) / sizeof(float)))

static int i64_eq(const ot_tensor *t, const int64_t *v, int64_t n) {
    if (t->dtype != OT_I64 || ot_tensor_numel(t) != n) return 0;
    for (int64_t i = 0; i < n; i++)
        if (((const int64_t *)t->data)[i] != v[i]) return 0;
    return 1;
}
#define I64_EQ(t, ...) i64_eq((t), D(__VA_ARGS__), NARG(__VA_ARGS__))

/* The call failed with `code` and a message naming the node and containing `needle`. */
static int fails_with(ot_status st, ot_status code, const char *node, const char *needle) {
    const char *m = ot_last_error();
    int ok = st == code && strstr(m, node) && (!needle || strstr(m, needle));
    if (!ok) fprintf(stderr, "  got status %d, message: %s\n", (int)st, m);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Views. */

static void test_reshape(void) {
    tnode t;
    result r;
    ot_tensor *x = iota_f32(3, D(2, 3, 4));
    ot_tensor *s = I64S(0, -1);
    tn_init(&t, "Reshape", "rs");
    CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 12));
    CHECK(memcmp(r.out[0].data, x->data, 24 * 4) == 0);
    res_free(&r);
    ot_tensor_free(s);

    s = I64S(4, 0, -1); /* 0 copies dim 1 (3) */
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 4, 3, 2));
    res_free(&r);
    ot_tensor_free(s);

    s = I64S(5, -1);
    CHECK(fails_with(run(&t, 14, 2, (ot_tensor *[]){x, s}, 1, &r), OT_E_SHAPE, "'rs'", "-1"));
    ot_tensor_free(s);
    s = I64S(-1, -1);
    CHECK(fails_with(run(&t, 14, 2, (ot_tensor *[]){x, s}, 1, &r), OT_E_SHAPE, "'rs'", "at most one"));
    ot_tensor_free(s);
    s = I64S(2, 3, 5);
    CHECK(fails_with(run(&t, 14, 2, (ot_tensor *[]){x, s}, 1, &r), OT_E_SHAPE, "'rs'", "30 elements"));
    ot_tensor_free(s);

    /* the shape must be known at plan time */
    s = I64S(24);
    void *keep = s->data;
    s->data = NULL;
    CHECK(fails_with(run_ex(&t, 14, 2, (ot_tensor *[]){x, s}, 1, 0, &r, 1), OT_E_UNSUPPORTED, "'rs'", "shape"));
    s->data = keep;
    ot_tensor_free(s);
    ot_tensor_free(x);

    /* allowzero: 0 is a real zero dim (opset 14), a copy at opset 13 */
    x = oh_tensor(OT_F32, 2, D(0, 3), NULL);
    s = I64S(3, 0);
    tn_int(&t, "allowzero", 1);
    CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 0));
    res_free(&r);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r), OT_E_SHAPE, "'rs'", NULL)); /* [3,3] != 0 el */
    ot_tensor_free(s);
    s = I64S(0, -1);
    CHECK(fails_with(run(&t, 14, 2, (ot_tensor *[]){x, s}, 1, &r), OT_E_SHAPE, "'rs'", "allowzero"));
    ot_tensor_free(s);
    ot_tensor_free(x);

    /* the kernel copies (also as a no-op when aliased) */
    x = rand_t(OT_I64, 2, D(300, 70));
    s = I64S(70, 300);
    tn_init(&t, "Reshape", "rs2");
    CHECK_OK(run(&t, 21, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(r.out[0].dtype == OT_I64 && memcmp(r.out[0].data, x->data, 300 * 70 * 8) == 0);
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(x);
}

static void test_flatten(void) {
    tnode t;
    result r;
    ot_tensor *x = iota_f32(4, D(2, 3, 4, 5));
    static const struct { int64_t axis, a, b; } cases[] = {
        {2, 6, 20}, {-1, 24, 5}, {0, 1, 120}, {4, 120, 1}, {1, 2, 60},
    };
    for (int k = 0; k < 5; k++) {
        tn_init(&t, "Flatten", "fl");
        tn_int(&t, "axis", cases[k].axis);
        CHECK_OK(run(&t, 13, 1, &x, 1, &r));
        CHECK(shape_is(&r.out[0], 2, (int64_t[]){cases[k].a, cases[k].b}));
        CHECK(memcmp(r.out[0].data, x->data, 120 * 4) == 0);
        res_free(&r);
    }
    tn_init(&t, "Flatten", "fl");
    CHECK_OK(run(&t, 21, 1, &x, 1, &r)); /* default axis 1 */
    CHECK(SHAPE_IS(&r.out[0], 2, 60));
    res_free(&r);
    tn_int(&t, "axis", 5);
    CHECK(fails_with(run(&t, 13, 1, &x, 1, &r), OT_E_INVALID, "'fl'", "axis 5"));
    ot_tensor_free(x);
}

static void test_squeeze_unsqueeze(void) {
    tnode t;
    result r;
    ot_tensor *x = iota_f32(4, D(1, 3, 1, 2));
    tn_init(&t, "Squeeze", "sq");
    CHECK_OK(run(&t, 13, 1, &x, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 2));
    CHECK(F32_EQ(&r.out[0], 0, 1, 2, 3, 4, 5));
    res_free(&r);
    ot_tensor *ax = I64S(-2);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 1, 3, 2));
    res_free(&r);
    ot_tensor_free(ax);
    ax = I64S(1);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r), OT_E_SHAPE, "'sq'", "size 3"));
    ot_tensor_free(ax);
    ax = I64S(0, -4);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r), OT_E_INVALID, "'sq'", "twice"));
    ot_tensor_free(ax);
    ax = I64S(4);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r), OT_E_INVALID, "'sq'", "axis 4"));
    ot_tensor_free(ax);
    ot_tensor_free(x);

    x = iota_f32(2, D(3, 2));
    tn_init(&t, "Unsqueeze", "us");
    ax = I64S(0, -1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 1, 3, 2, 1));
    CHECK(F32_EQ(&r.out[0], 0, 1, 2, 3, 4, 5));
    res_free(&r);
    ot_tensor_free(ax);
    ax = I64S(1, 3);
    CHECK_OK(run(&t, 21, 2, (ot_tensor *[]){x, ax}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 1, 2, 1));
    res_free(&r);
    ot_tensor_free(ax);
    ax = I64S(2, -2); /* both are axis 2 of the rank-4 output */
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r), OT_E_INVALID, "'us'", "twice"));
    ot_tensor_free(ax);
    ot_tensor_free(x);

    tn_init(&t, "Unsqueeze", "us");
    x = oh_tensor(OT_F32, 0, NULL, (float[]){7});
    ax = I64S(0);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 1) && F32_EQ(&r.out[0], 7));
    res_free(&r);
    ot_tensor_free(ax);
    ot_tensor_free(x);
}

static void test_identity_dropout(void) {
    tnode t;
    result r;
    ot_tensor *x = oh_tensor(OT_I64, 1, D(3), D(5, -6, 7));
    tn_init(&t, "Identity", "id");
    CHECK_OK(run(&t, 16, 1, &x, 1, &r));
    CHECK(I64_EQ(&r.out[0], 5, -6, 7));
    res_free(&r);
    ot_tensor_free(x);

    x = iota_f32(2, D(2, 3));
    tn_init(&t, "Dropout", "dr");
    tn_int(&t, "seed", 3);
    CHECK_OK(run(&t, 13, 1, &x, 2, &r));
    CHECK(F32_EQ(&r.out[0], 0, 1, 2, 3, 4, 5));
    CHECK(r.out[1].dtype == OT_BOOL && SHAPE_IS(&r.out[1], 2, 3));
    int all = 1;
    for (int i = 0; i < 6; i++) all &= ((unsigned char *)r.out[1].data)[i] == 1;
    CHECK(all);
    res_free(&r);
    ot_tensor *ratio = oh_tensor(OT_F32, 0, NULL, (float[]){0.5f});
    ot_tensor *tm = oh_tensor(OT_BOOL, 0, NULL, (unsigned char[]){0});
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){x, ratio, tm}, 1, &r)); /* training_mode false: fine */
    CHECK(F32_EQ(&r.out[0], 0, 1, 2, 3, 4, 5));
    res_free(&r);
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){x, NULL, NULL}, 1, &r));
    res_free(&r);
    ((unsigned char *)tm->data)[0] = 1;
    CHECK(fails_with(run(&t, 13, 3, (ot_tensor *[]){x, ratio, tm}, 1, &r), OT_E_UNSUPPORTED, "'dr'",
                     "training_mode"));
    ot_tensor_free(tm);
    ot_tensor_free(ratio);
    ot_tensor_free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* Transpose: against a naive multi-index walk. */

static void naive_transpose(const ot_tensor *x, const int *perm, void *y) {
    int r = x->ndim;
    size_t es = ot_dtype_size(x->dtype);
    int64_t xs[OT_MAX_DIMS], od[OT_MAX_DIMS], idx[OT_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) xs[d] = s, s *= x->dims[d];
    for (int d = 0; d < r; d++) od[d] = x->dims[perm[d]];
    int64_t n = ot_tensor_numel(x);
    for (int64_t o = 0; o < n; o++) {
        int64_t rem = o, src = 0;
        for (int d = r - 1; d >= 0; d--) {
            idx[d] = rem % od[d];
            rem /= od[d];
        }
        for (int d = 0; d < r; d++) src += idx[d] * xs[perm[d]];
        memcpy((char *)y + o * es, (const char *)x->data + src * es, es);
    }
}

static int check_transpose(ot_dtype dt, int r, const int64_t *dims, const int *perm) {
    ot_tensor *x = rand_t(dt, r, dims);
    tnode t;
    result res;
    int64_t p64[OT_MAX_DIMS];
    int rev[OT_MAX_DIMS];
    tn_init(&t, "Transpose", "tp");
    if (perm) {
        for (int d = 0; d < r; d++) p64[d] = perm[d];
        tn_ints(&t, "perm", p64, r);
    } else {
        for (int d = 0; d < r; d++) rev[d] = r - 1 - d;
        perm = rev;
    }
    int ok = run(&t, 13, 1, &x, 1, &res) == OT_OK;
    if (ok) {
        for (int d = 0; d < r; d++) ok &= res.out[0].dims[d] == dims[perm[d]];
        size_t nb = ot_tensor_nbytes(x);
        void *want = malloc(nb ? nb : 1);
        naive_transpose(x, perm, want);
        ok &= res.out[0].ndim == r && memcmp(res.out[0].data, want, nb) == 0;
        free(want);
    } else {
        fprintf(stderr, "  %s\n", ot_last_error());
    }
    if (!ok) {
        char b[128];
        fprintf(stderr, "  transpose %s dtype %s failed\n", ot_shape_str(b, sizeof b, r, dims), ot_dtype_name(dt));
    }
    res_free(&res);
    ot_tensor_free(x);
    return ok;
}

static void test_transpose(void) {
    /* every permutation of a 4-D tensor, small dims so both engine paths and coalescing run */
    int perm[4], bad = 0, n = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++) {
                    if (a == b || a == c || a == d || b == c || b == d || c == d) continue;
                    perm[0] = a, perm[1] = b, perm[2] = c, perm[3] = d;
                    bad += !check_transpose(OT_F32, 4, D(2, 3, 5, 7), perm);
                    bad += !check_transpose(OT_F32, 4, D(6, 1, 9, 11), perm); /* size-1 dim dropped */
                    n++;
                }
    CHECK(n == 24 && bad == 0);
    /* attention layouts, large enough to go parallel */
    CHECK(check_transpose(OT_F32, 4, D(2, 33, 4, 64), (int[]){0, 2, 1, 3}));  /* [B,S,H,D]->[B,H,S,D] */
    CHECK(check_transpose(OT_F32, 4, D(2, 4, 33, 64), (int[]){0, 2, 1, 3}));  /* and back */
    CHECK(check_transpose(OT_F32, 4, D(2, 4, 70, 64), (int[]){0, 1, 3, 2}));  /* K^T: last two */
    CHECK(check_transpose(OT_F32, 3, D(3, 70, 130), (int[]){0, 2, 1}));       /* tile remainders */
    CHECK(check_transpose(OT_F32, 2, D(1000, 3), NULL));                      /* thin */
    CHECK(check_transpose(OT_F32, 2, D(3, 1000), NULL));
    CHECK(check_transpose(OT_F32, 5, D(2, 3, 4, 5, 6), (int[]){4, 0, 3, 1, 2}));
    /* every element size */
    CHECK(check_transpose(OT_U8, 3, D(5, 37, 41), (int[]){2, 0, 1}));
    CHECK(check_transpose(OT_F16, 3, D(5, 37, 41), (int[]){0, 2, 1}));
    CHECK(check_transpose(OT_BF16, 2, D(64, 96), NULL));
    CHECK(check_transpose(OT_I64, 3, D(5, 37, 41), (int[]){1, 2, 0}));
    CHECK(check_transpose(OT_F64, 4, D(3, 5, 7, 9), (int[]){3, 1, 2, 0}));
    CHECK(check_transpose(OT_BOOL, 2, D(130, 3), NULL));
    /* scalars, empty, identity */
    CHECK(check_transpose(OT_F32, 0, NULL, NULL));
    CHECK(check_transpose(OT_F32, 3, D(0, 3, 4), (int[]){2, 0, 1}));
    CHECK(check_transpose(OT_F32, 3, D(2, 3, 4), (int[]){0, 1, 2}));

    tnode t;
    result r;
    ot_tensor *x = iota_f32(2, D(2, 3));
    tn_init(&t, "Transpose", "tp");
    tn_ints(&t, "perm", D(0, 0), 2);
    CHECK(fails_with(run(&t, 13, 1, &x, 1, &r), OT_E_INVALID, "'tp'", "permutation"));
    tn_init(&t, "Transpose", "tp");
    tn_ints(&t, "perm", D(1, 0, 2), 3);
    CHECK(fails_with(run(&t, 13, 1, &x, 1, &r), OT_E_SHAPE, "'tp'", "rank 2"));
    tn_init(&t, "Transpose", "tp");
    CHECK_OK(run(&t, 21, 1, &x, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 2) && F32_EQ(&r.out[0], 0, 3, 1, 4, 2, 5));
    res_free(&r);
    ot_tensor_free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* Concat / Split. */

static void test_concat(void) {
    tnode t;
    result r;
    ot_tensor *a = iota_f32(3, D(2, 1, 3));                                         /* 0..5 */
    ot_tensor *b = oh_f32(3, D(2, 2, 3), (float[]){10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21});
    ot_tensor *e = oh_tensor(OT_F32, 3, D(2, 0, 3), NULL);
    ot_tensor *e1 = oh_tensor(OT_F32, 1, D(0), NULL);
    tn_init(&t, "Concat", "cc");
    tn_int(&t, "axis", -2);
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){a, e, b}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 3, 3));
    CHECK(F32_EQ(&r.out[0], 0, 1, 2, 10, 11, 12, 13, 14, 15, 3, 4, 5, 16, 17, 18, 19, 20, 21));
    res_free(&r);
    /* an empty input of another rank is still a rank mismatch (as in the spec and ORT) */
    CHECK(fails_with(run(&t, 13, 4, (ot_tensor *[]){a, e, b, e1}, 1, &r), OT_E_SHAPE, "'cc'", "rank 1"));
    tn_init(&t, "Concat", "cc");
    tn_int(&t, "axis", 0);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){a, b}, 1, &r), OT_E_SHAPE, "'cc'", "axis 0"));
    ot_tensor *c32 = oh_tensor(OT_I32, 3, D(2, 1, 3), NULL);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){a, c32}, 1, &r), OT_E_SHAPE, "'cc'", "dtype"));
    ot_tensor_free(c32);
    tn_init(&t, "Concat", "cc");
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){a, b}, 1, &r), OT_E_INVALID, "'cc'", "axis"));

    /* axis 0 (one big copy per input) and a large last-axis concat (parallel over rows) */
    ot_tensor *p = rand_t(OT_I64, 2, D(700, 50)), *q = rand_t(OT_I64, 2, D(700, 30));
    tn_init(&t, "Concat", "cc");
    tn_int(&t, "axis", 1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){p, q}, 1, &r));
    int ok = SHAPE_IS(&r.out[0], 700, 80);
    const int64_t *y = r.out[0].data, *pp = p->data, *qq = q->data;
    for (int i = 0; i < 700 && ok; i++)
        for (int j = 0; j < 80; j++) ok &= y[i * 80 + j] == (j < 50 ? pp[i * 50 + j] : qq[i * 30 + j - 50]);
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(q);
    q = rand_t(OT_I64, 2, D(300, 50));
    tn_init(&t, "Concat", "cc");
    tn_int(&t, "axis", 0);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){p, q}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 1000, 50));
    CHECK(memcmp(r.out[0].data, p->data, 700 * 50 * 8) == 0 &&
          memcmp((char *)r.out[0].data + 700 * 50 * 8, q->data, 300 * 50 * 8) == 0);
    res_free(&r);
    ot_tensor_free(p);
    ot_tensor_free(q);
    ot_tensor_free(a);
    ot_tensor_free(b);
    ot_tensor_free(e);
    ot_tensor_free(e1);
}

static void test_split(void) {
    tnode t;
    result r;
    ot_tensor *x = iota_f32(2, D(2, 6));
    ot_tensor *s = I64S(1, 2, 3);
    tn_init(&t, "Split", "sp");
    tn_int(&t, "axis", -1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 3, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 1) && F32_EQ(&r.out[0], 0, 6));
    CHECK(SHAPE_IS(&r.out[1], 2, 2) && F32_EQ(&r.out[1], 1, 2, 7, 8));
    CHECK(SHAPE_IS(&r.out[2], 2, 3) && F32_EQ(&r.out[2], 3, 4, 5, 9, 10, 11));
    res_free(&r);
    /* omitted middle output */
    CHECK_OK(run_ex(&t, 13, 2, (ot_tensor *[]){x, s}, 3, 2u, &r, 0));
    CHECK(F32_EQ(&r.out[2], 3, 4, 5, 9, 10, 11));
    res_free(&r);
    ot_tensor_free(s);
    /* equal parts */
    CHECK_OK(run(&t, 13, 1, &x, 3, &r));
    CHECK(SHAPE_IS(&r.out[1], 2, 2) && F32_EQ(&r.out[1], 2, 3, 8, 9));
    res_free(&r);
    CHECK(fails_with(run(&t, 13, 1, &x, 4, &r), OT_E_SHAPE, "'sp'", "evenly"));
    s = I64S(1, 2, 2);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, s}, 3, &r), OT_E_SHAPE, "'sp'", "add up to 5"));
    ot_tensor_free(s);
    ot_tensor_free(x);

    /* opset 18 num_outputs: ceil(7/3)=3 -> 3, 3, 1 */
    x = iota_f32(1, D(7));
    tn_init(&t, "Split", "sp18");
    tn_int(&t, "num_outputs", 3);
    CHECK_OK(run(&t, 18, 1, &x, 3, &r));
    CHECK(F32_EQ(&r.out[0], 0, 1, 2) && F32_EQ(&r.out[1], 3, 4, 5) && F32_EQ(&r.out[2], 6));
    res_free(&r);
    CHECK(fails_with(run(&t, 18, 1, &x, 2, &r), OT_E_INVALID, "'sp18'", "num_outputs"));
    s = I64S(3, 4);
    tn_init(&t, "Split", "sp18");
    CHECK_OK(run(&t, 18, 2, (ot_tensor *[]){x, s}, 2, &r));
    CHECK(F32_EQ(&r.out[0], 0, 1, 2) && F32_EQ(&r.out[1], 3, 4, 5, 6));
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(x);

    /* big: axis 0, one copy per output */
    x = rand_t(OT_F32, 2, D(1000, 64));
    tn_init(&t, "Split", "sp");
    CHECK_OK(run(&t, 13, 1, &x, 2, &r));
    CHECK(memcmp(r.out[0].data, x->data, 500 * 64 * 4) == 0 &&
          memcmp(r.out[1].data, (char *)x->data + 500 * 64 * 4, 500 * 64 * 4) == 0);
    res_free(&r);
    ot_tensor_free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* Slice (expected values from numpy slicing of arange(20).reshape(4, 5)). */

static void test_slice(void) {
    tnode t;
    result r;
    ot_tensor *x = iota_f32(2, D(4, 5));
    tn_init(&t, "Slice", "sl");
    ot_tensor *st = I64S(1, -3), *en = I64S(INT64_MAX, -1), *ax = I64S(0, 1);
    CHECK_OK(run(&t, 13, 4, (ot_tensor *[]){x, st, en, ax}, 1, &r)); /* x[1:, -3:-1] */
    CHECK(SHAPE_IS(&r.out[0], 3, 2) && F32_EQ(&r.out[0], 7, 8, 12, 13, 17, 18));
    res_free(&r);
    ot_tensor_free(st), ot_tensor_free(en), ot_tensor_free(ax);

    ot_tensor *sp;
    st = I64S(-1), en = I64S(INT64_MIN), ax = I64S(-1), sp = I64S(-2); /* x[:, -1::-2] */
    CHECK_OK(run(&t, 13, 5, (ot_tensor *[]){x, st, en, ax, sp}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 4, 3) && F32_EQ(&r.out[0], 4, 2, 0, 9, 7, 5, 14, 12, 10, 19, 17, 15));
    res_free(&r);
    ot_tensor_free(st), ot_tensor_free(en), ot_tensor_free(ax), ot_tensor_free(sp);

    st = I64S(3, 0), en = I64S(0, 100), ax = I64S(0, 1), sp = I64S(-1, 3); /* x[3:0:-1, ::3] */
    CHECK_OK(run(&t, 13, 5, (ot_tensor *[]){x, st, en, ax, sp}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 2) && F32_EQ(&r.out[0], 15, 18, 10, 13, 5, 8));
    res_free(&r);
    ot_tensor_free(st), ot_tensor_free(en), ot_tensor_free(ax), ot_tensor_free(sp);

    st = I64S(-100, 7), en = I64S(100, 9); /* clamped: x[-100:100, 7:9] is [4, 0] */
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){x, st, en}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 4, 0));
    res_free(&r);
    ot_tensor_free(st), ot_tensor_free(en);

    st = oh_tensor(OT_I32, 1, D(1), (int32_t[]){0}), en = oh_tensor(OT_I32, 1, D(1), (int32_t[]){2}); /* x[:2], int32 */
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){x, st, en}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 5) && F32_EQ(&r.out[0], 0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    res_free(&r);
    ot_tensor_free(st), ot_tensor_free(en);

    st = I64S(0), en = I64S(1), ax = I64S(0), sp = I64S(0);
    CHECK(fails_with(run(&t, 13, 5, (ot_tensor *[]){x, st, en, ax, sp}, 1, &r), OT_E_INVALID, "'sl'", "steps"));
    ot_tensor_free(sp);
    sp = I64S(1);
    ot_tensor_free(ax);
    ax = I64S(2);
    CHECK(fails_with(run(&t, 13, 5, (ot_tensor *[]){x, st, en, ax, sp}, 1, &r), OT_E_INVALID, "'sl'", "axis 2"));
    ot_tensor_free(st), ot_tensor_free(en), ot_tensor_free(ax), ot_tensor_free(sp);
    ot_tensor_free(x);

    /* a large 3-D slice with steps on every axis against a naive loop */
    x = rand_t(OT_F32, 3, D(40, 50, 60));
    st = I64S(38, 1, 2), en = I64S(-41, 49, 59), ax = I64S(0, 1, 2), sp = I64S(-3, 2, 1);
    CHECK_OK(run(&t, 13, 5, (ot_tensor *[]){x, st, en, ax, sp}, 1, &r));
    /* axis 0: 38, 35, ..., 2 (13 values); axis 1: 1, 3, ..., 47 (24); axis 2: 2..58 (57) */
    CHECK(SHAPE_IS(&r.out[0], 13, 24, 57));
    int ok = 1;
    const float *xv = x->data, *yv = r.out[0].data;
    for (int i = 0; i < 13; i++)
        for (int j = 0; j < 24; j++)
            for (int k = 0; k < 57; k++)
                ok &= yv[(i * 24 + j) * 57 + k] == xv[((38 - 3 * i) * 50 + (1 + 2 * j)) * 60 + 2 + k];
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(st), ot_tensor_free(en), ot_tensor_free(ax), ot_tensor_free(sp);
    ot_tensor_free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* Gather. */

static void test_gather(void) {
    tnode t;
    result r;
    /* embedding: table [10, 8], ids [2, 3] with a negative id */
    ot_tensor *w = iota_f32(2, D(10, 8));
    ot_tensor *ids = oh_tensor(OT_I64, 2, D(2, 3), D(0, 9, -1, 3, 3, 5));
    tn_init(&t, "Gather", "emb");
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){w, ids}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 3, 8));
    int ok = 1;
    const int64_t want_rows[6] = {0, 9, 9, 3, 3, 5};
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 8; j++) ok &= ((float *)r.out[0].data)[k * 8 + j] == (float)(want_rows[k] * 8 + j);
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(ids);

    /* out of range names the node and the index */
    ids = oh_tensor(OT_I64, 2, D(1, 2), D(2, 10));
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){w, ids}, 1, &r), OT_E_INVALID, "'emb'", "index 10"));
    ot_tensor_free(ids);
    ids = oh_tensor(OT_I32, 1, D(1), (int32_t[]){-11});
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){w, ids}, 1, &r), OT_E_INVALID, "'emb'", "index -11"));
    ot_tensor_free(ids);

    /* axis 1, int32 indices: columns */
    ids = oh_tensor(OT_I32, 1, D(2), (int32_t[]){7, -8});
    tn_init(&t, "Gather", "g1");
    tn_int(&t, "axis", -1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){w, ids}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 10, 2));
    ok = 1;
    const float *col = r.out[0].data;
    for (int i = 0; i < 10; i++) ok &= col[i * 2] == i * 8 + 7 && col[i * 2 + 1] == i * 8;
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(ids);

    /* scalar index drops the axis */
    ids = i64s(4);
    tn_init(&t, "Gather", "g0");
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){w, ids}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 8) && F32_EQ(&r.out[0], 32, 33, 34, 35, 36, 37, 38, 39));
    res_free(&r);
    ot_tensor_free(ids);
    ot_tensor_free(w);

    /* middle axis of a 3-D i64 tensor (shape arithmetic as exporters emit it) */
    ot_tensor *s = oh_tensor(OT_I64, 3, D(2, 3, 2), D(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
    ids = oh_tensor(OT_I64, 2, D(2, 1), D(2, 0));
    tn_init(&t, "Gather", "gm");
    tn_int(&t, "axis", 1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){s, ids}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 2, 1, 2) && I64_EQ(&r.out[0], 4, 5, 0, 1, 10, 11, 6, 7));
    res_free(&r);
    ot_tensor_free(ids);
    ot_tensor_free(s);

    /* large embedding, parallel path, against a naive loop; f16 rows */
    w = rand_t(OT_F16, 2, D(500, 96));
    ids = oh_tensor(OT_I32, 2, D(4, 64), NULL);
    for (int k = 0; k < 256; k++) ((int32_t *)ids->data)[k] = (int32_t)(rnd() % 1000) - 500;
    tn_init(&t, "Gather", "big");
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){w, ids}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 4, 64, 96));
    ok = 1;
    for (int k = 0; k < 256; k++) {
        int64_t v = ((int32_t *)ids->data)[k];
        if (v < 0) v += 500;
        ok &= memcmp((char *)r.out[0].data + k * 96 * 2, (char *)w->data + v * 96 * 2, 96 * 2) == 0;
    }
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(ids);
    ot_tensor_free(w);
}

/* ------------------------------------------------------------------------------------------ */
/* Expand. */

static void test_expand(void) {
    tnode t;
    result r;
    ot_tensor *x = oh_f32(2, D(3, 1), (float[]){1, 2, 3});
    ot_tensor *s = I64S(2, 1, 4);
    tn_init(&t, "Expand", "ex");
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 3, 4));
    CHECK(F32_EQ(&r.out[0], 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    res_free(&r);
    ot_tensor_free(s);
    s = I64S(1, 1); /* bidirectional: a 1 in shape keeps x's dim */
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 1) && F32_EQ(&r.out[0], 1, 2, 3));
    res_free(&r);
    ot_tensor_free(s);
    s = I64S(4, 1);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r), OT_E_SHAPE, "'ex'", "cannot be expanded"));
    ot_tensor_free(s);
    ot_tensor_free(x);

    x = oh_f32(1, D(4), (float[]){1, 2, 3, 4}); /* row broadcast to [3, 4] */
    s = I64S(3, 1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3, 4) && F32_EQ(&r.out[0], 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4));
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(x);

    /* large, middle dim broadcast, i64; and an attention-mask style [B,1,1,S] -> [B,H,S,S] */
    x = rand_t(OT_I64, 3, D(20, 1, 300));
    s = I64S(20, 7, 300);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    int ok = SHAPE_IS(&r.out[0], 20, 7, 300);
    for (int i = 0; i < 20 && ok; i++)
        for (int j = 0; j < 7; j++)
            for (int k = 0; k < 300; k++)
                ok &= ((int64_t *)r.out[0].data)[(i * 7 + j) * 300 + k] == ((int64_t *)x->data)[i * 300 + k];
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(x);
    x = rand_t(OT_F32, 4, D(2, 1, 1, 64));
    s = I64S(2, 4, 64, 64);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    ok = SHAPE_IS(&r.out[0], 2, 4, 64, 64);
    for (int64_t i = 0; i < 2 * 4 * 64 * 64 && ok; i++)
        ok &= ((float *)r.out[0].data)[i] == ((float *)x->data)[(i / (4 * 64 * 64)) * 64 + i % 64];
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(x);

    x = oh_f32(1, D(1), (float[]){5}); /* scalar-like fill, and a zero dim */
    s = I64S(2, 0);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, s}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 0));
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* Generators. */

static void test_shape(void) {
    tnode t;
    result r;
    ot_tensor *x = oh_tensor(OT_F32, 3, D(2, 3, 4), NULL);
    free(x->data); /* Shape must read dims only: no data at all */
    x->data = NULL;
    x->owned = 0;
    tn_init(&t, "Shape", "sh");
    CHECK_OK(run(&t, 13, 1, &x, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3) && I64_EQ(&r.out[0], 2, 3, 4));
    res_free(&r);
    tn_int(&t, "start", 1); /* ignored before 15 */
    CHECK_OK(run(&t, 14, 1, &x, 1, &r));
    CHECK(I64_EQ(&r.out[0], 2, 3, 4));
    res_free(&r);
    CHECK_OK(run(&t, 15, 1, &x, 1, &r));
    CHECK(I64_EQ(&r.out[0], 3, 4));
    res_free(&r);
    tn_init(&t, "Shape", "sh");
    tn_int(&t, "end", -1);
    CHECK_OK(run(&t, 15, 1, &x, 1, &r));
    CHECK(I64_EQ(&r.out[0], 2, 3));
    res_free(&r);
    tn_init(&t, "Shape", "sh");
    tn_int(&t, "start", -10);
    tn_int(&t, "end", 10);
    CHECK_OK(run(&t, 21, 1, &x, 1, &r));
    CHECK(I64_EQ(&r.out[0], 2, 3, 4));
    res_free(&r);
    tn_init(&t, "Shape", "sh");
    tn_int(&t, "start", 2);
    tn_int(&t, "end", 1);
    CHECK_OK(run(&t, 21, 1, &x, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 0));
    res_free(&r);
    ot_tensor_free(x);
}

static void test_constant_of_shape(void) {
    tnode t;
    result r;
    ot_tensor *s = I64S(2, 3);
    tn_init(&t, "ConstantOfShape", "cos");
    CHECK_OK(run(&t, 13, 1, &s, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 3) && F32_EQ(&r.out[0], 0, 0, 0, 0, 0, 0));
    res_free(&r);
    ot_tensor *v = oh_tensor(OT_I64, 1, D(1), D(-7));
    tn_tensor(&t, "value", v);
    CHECK_OK(run(&t, 20, 1, &s, 1, &r));
    CHECK(I64_EQ(&r.out[0], -7, -7, -7, -7, -7, -7));
    res_free(&r);
    ot_tensor_free(s);
    s = oh_tensor(OT_I64, 1, D(0), NULL); /* empty shape: a scalar */
    CHECK_OK(run(&t, 13, 1, &s, 1, &r));
    CHECK(r.out[0].ndim == 0 && I64_EQ(&r.out[0], -7));
    res_free(&r);
    ot_tensor_free(s);
    s = I64S(2, -1);
    CHECK(fails_with(run(&t, 13, 1, &s, 1, &r), OT_E_SHAPE, "'cos'", "negative"));
    ot_tensor_free(s);
    ot_tensor_free(v);
    /* large f32 fill (parallel) */
    v = oh_f32(1, D(1), (float[]){1.5f});
    tn_init(&t, "ConstantOfShape", "cos");
    tn_tensor(&t, "value", v);
    s = I64S(512, 300);
    CHECK_OK(run(&t, 13, 1, &s, 1, &r));
    int ok = 1;
    for (int i = 0; i < 512 * 300; i++) ok &= ((float *)r.out[0].data)[i] == 1.5f;
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(s);
    ot_tensor_free(v);
}

static void test_constant(void) {
    tnode t;
    result r;
    ot_tensor *v = oh_f32(2, D(2, 2), (float[]){1, 2, 3, 4});
    tn_init(&t, "Constant", "k");
    tn_tensor(&t, "value", v);
    CHECK_OK(run(&t, 13, 0, NULL, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2, 2) && F32_EQ(&r.out[0], 1, 2, 3, 4));
    res_free(&r);
    tn_init(&t, "Constant", "k");
    tn_float(&t, "value_float", 2.5f);
    CHECK_OK(run(&t, 13, 0, NULL, 1, &r));
    CHECK(r.out[0].ndim == 0 && F32_EQ(&r.out[0], 2.5f));
    res_free(&r);
    tn_init(&t, "Constant", "k");
    tn_floats(&t, "value_floats", (float[]){1, -1, 0.5f}, 3);
    CHECK_OK(run(&t, 13, 0, NULL, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 3) && F32_EQ(&r.out[0], 1, -1, 0.5f));
    res_free(&r);
    tn_init(&t, "Constant", "k");
    tn_int(&t, "value_int", -3);
    CHECK_OK(run(&t, 13, 0, NULL, 1, &r));
    CHECK(r.out[0].ndim == 0 && I64_EQ(&r.out[0], -3));
    res_free(&r);
    tn_init(&t, "Constant", "k");
    tn_ints(&t, "value_ints", D(4, 5), 2);
    CHECK_OK(run(&t, 21, 0, NULL, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 2) && I64_EQ(&r.out[0], 4, 5));
    res_free(&r);
    tn_init(&t, "Constant", "ks");
    tn_string(&t, "value_string", "hello");
    CHECK(fails_with(run(&t, 13, 0, NULL, 1, &r), OT_E_UNSUPPORTED, "'ks'", "value_string"));
    tn_init(&t, "Constant", "kk");
    tn_int(&t, "value_int", 1);
    tn_tensor(&t, "value", v);
    CHECK(fails_with(run(&t, 13, 0, NULL, 1, &r), OT_E_INVALID, "'kk'", "exactly one"));
    tn_init(&t, "Constant", "k0");
    CHECK(fails_with(run(&t, 13, 0, NULL, 1, &r), OT_E_INVALID, "'k0'", "no value"));
    tn_init(&t, "Constant", "kp");
    tn_add(&t, "sparse_value", OT_ATTR_UNDEFINED);
    CHECK(fails_with(run(&t, 13, 0, NULL, 1, &r), OT_E_UNSUPPORTED, "'kp'", "sparse_value"));
    ot_tensor_free(v);
}

static void test_range(void) {
    tnode t;
    result r;
    tn_init(&t, "Range", "rg");
    ot_tensor *a = oh_tensor(OT_F32, 0, NULL, (float[]){0}), *b = oh_tensor(OT_F32, 0, NULL, (float[]){1}),
              *c = oh_tensor(OT_F32, 0, NULL, (float[]){0.25f});
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r));
    CHECK(F32_EQ(&r.out[0], 0, 0.25f, 0.5f, 0.75f));
    res_free(&r);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);

    a = i64s(10), b = i64s(4), c = i64s(-2); /* spec example 2 */
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r));
    CHECK(I64_EQ(&r.out[0], 10, 8, 6));
    res_free(&r);
    ot_tensor_free(b);
    b = i64s(11); /* wrong direction: empty */
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r));
    CHECK(SHAPE_IS(&r.out[0], 0));
    res_free(&r);
    ot_tensor_free(c);
    c = i64s(0);
    CHECK(fails_with(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r), OT_E_INVALID, "'rg'", "delta"));
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);

    a = oh_tensor(OT_I32, 0, NULL, (int32_t[]){3}), b = oh_tensor(OT_I32, 0, NULL, (int32_t[]){9}),
    c = oh_tensor(OT_I32, 0, NULL, (int32_t[]){3}); /* spec example 1 */
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r));
    CHECK(r.out[0].dtype == OT_I32 && SHAPE_IS(&r.out[0], 2) && ((int32_t *)r.out[0].data)[0] == 3 &&
          ((int32_t *)r.out[0].data)[1] == 6);
    res_free(&r);
    ot_tensor_free(c);
    c = oh_tensor(OT_I64, 0, NULL, D(3));
    CHECK(fails_with(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r), OT_E_SHAPE, "'rg'", "same dtype"));
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);

    a = oh_tensor(OT_F64, 0, NULL, (double[]){1}), b = oh_tensor(OT_F64, 0, NULL, (double[]){-1}),
    c = oh_tensor(OT_F64, 0, NULL, (double[]){-0.5}); /* ceil(-2 / -0.5) = 4 */
    CHECK_OK(run(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, &r));
    const double *dv = r.out[0].data;
    CHECK(SHAPE_IS(&r.out[0], 4) && dv[0] == 1 && dv[1] == 0.5 && dv[2] == 0 && dv[3] == -0.5);
    res_free(&r);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);

    a = i64s(INT64_MIN + 1), b = i64s(INT64_MAX), c = i64s(INT64_MAX); /* no overflow: 2 elements */
    CHECK_OK(run_ex(&t, 13, 3, (ot_tensor *[]){a, b, c}, 1, 0, &r, 0));
    CHECK(I64_EQ(&r.out[0], INT64_MIN + 1, 0));
    res_free(&r);
    ot_tensor_free(a), ot_tensor_free(b), ot_tensor_free(c);
}

static void test_trilu(void) {
    tnode t;
    result r;
    ot_tensor *x = iota_f32(3, D(2, 3, 4));
    tn_init(&t, "Trilu", "tr");
    CHECK_OK(run(&t, 14, 1, &x, 1, &r)); /* numpy triu(k=0) */
    CHECK(F32_EQ(&r.out[0], 0, 1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11, 12, 13, 14, 15, 0, 17, 18, 19, 0, 0, 22, 23));
    res_free(&r);
    ot_tensor *k = i64s(2);
    CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, k}, 1, &r)); /* numpy triu(k=2) */
    CHECK(F32_EQ(&r.out[0], 0, 0, 2, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 14, 15, 0, 0, 0, 19, 0, 0, 0, 0));
    res_free(&r);
    ot_tensor_free(k);
    tn_init(&t, "Trilu", "tr");
    tn_int(&t, "upper", 0);
    k = i64s(-1);
    CHECK_OK(run(&t, 21, 2, (ot_tensor *[]){x, k}, 1, &r)); /* numpy tril(k=-1) */
    CHECK(F32_EQ(&r.out[0], 0, 0, 0, 0, 4, 0, 0, 0, 8, 9, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 20, 21, 0, 0));
    res_free(&r);
    ot_tensor_free(k);
    k = i64s(INT64_MAX); /* lower with huge k keeps all */
    CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, k}, 1, &r));
    CHECK(memcmp(r.out[0].data, x->data, 24 * 4) == 0);
    res_free(&r);
    ot_tensor_free(k);
    k = i64s(INT64_MIN); /* ... and with hugely negative k none */
    CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, k}, 1, &r));
    CHECK(F32_EQ(&r.out[0], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    res_free(&r);
    ot_tensor_free(k);
    ot_tensor_free(x);
    x = iota_f32(1, D(4));
    CHECK(fails_with(run(&t, 14, 1, &x, 1, &r), OT_E_SHAPE, "'tr'", "rank"));
    ot_tensor_free(x);

    /* large i64 batch against the definition */
    x = rand_t(OT_I64, 3, D(3, 100, 130));
    k = i64s(-5);
    tn_init(&t, "Trilu", "tr");
    CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, k}, 1, &r));
    int ok = 1;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < 130; j++) {
                int64_t at = (b * 100 + i) * 130 + j;
                int64_t want = j - i >= -5 ? ((int64_t *)x->data)[at] : 0;
                ok &= ((int64_t *)r.out[0].data)[at] == want;
            }
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(k);
    ot_tensor_free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* CumSum. */

static void test_cumsum(void) {
    tnode t;
    result r;
    ot_tensor *x = oh_f32(2, D(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    ot_tensor *ax = i64s(1);
    static const struct { int excl, rev; float want[6]; } cases[] = {
        {0, 0, {1, 3, 6, 4, 9, 15}},
        {1, 0, {0, 1, 3, 0, 4, 9}},
        {0, 1, {6, 5, 3, 15, 11, 6}},
        {1, 1, {5, 3, 0, 11, 6, 0}},
    };
    for (int k = 0; k < 4; k++) {
        tn_init(&t, "CumSum", "cs");
        tn_int(&t, "exclusive", cases[k].excl);
        tn_int(&t, "reverse", cases[k].rev);
        CHECK_OK(run(&t, 14, 2, (ot_tensor *[]){x, ax}, 1, &r));
        CHECK(f32_eq(&r.out[0], cases[k].want, 6));
        res_free(&r);
    }
    ot_tensor_free(ax);
    ax = oh_tensor(OT_I32, 1, D(1), (int32_t[]){-2}); /* axis 0, int32 axis */
    tn_init(&t, "CumSum", "cs");
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    CHECK(F32_EQ(&r.out[0], 1, 2, 3, 5, 7, 9));
    res_free(&r);
    ot_tensor_free(ax);
    ax = i64s(2);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r), OT_E_INVALID, "'cs'", "axis 2"));
    ot_tensor_free(ax);
    ot_tensor_free(x);

    x = oh_tensor(OT_I32, 1, D(4), (int32_t[]){INT32_MAX, 1, -5, 7}); /* int32 wraps like two's complement */
    ax = i64s(0);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    const int32_t *iv = r.out[0].data;
    CHECK(iv[0] == INT32_MAX && iv[1] == INT32_MIN && iv[2] == 2147483643 && iv[3] == -2147483646);
    res_free(&r);
    ot_tensor_free(x);
    x = oh_tensor(OT_I64, 2, D(1, 3), D(-1, -2, 10));
    ot_tensor_free(ax);
    ax = i64s(-1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    CHECK(I64_EQ(&r.out[0], -1, -3, 7));
    res_free(&r);
    ot_tensor_free(x);
    x = oh_tensor(OT_F16, 1, D(2), NULL);
    CHECK(fails_with(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r), OT_E_UNSUPPORTED, "'cs'", "float16"));
    ot_tensor_free(x);
    ot_tensor_free(ax);

    /* large f64 along the middle axis, reverse exclusive, against a naive loop */
    x = rand_t(OT_F64, 3, D(7, 50, 600));
    for (int64_t i = 0; i < 7 * 50 * 600; i++) ((double *)x->data)[i] = (double)(rnd() % 1000) / 8.0;
    ax = i64s(1);
    tn_init(&t, "CumSum", "cs");
    tn_int(&t, "exclusive", 1);
    tn_int(&t, "reverse", 1);
    CHECK_OK(run(&t, 13, 2, (ot_tensor *[]){x, ax}, 1, &r));
    int ok = 1;
    const double *xv = x->data, *yv = r.out[0].data;
    for (int o = 0; o < 7; o++)
        for (int j = 0; j < 600; j++) {
            double acc = 0; /* multiples of 1/8 below 2^40: exact in any order */
            for (int a = 49; a >= 0; a--) {
                ok &= yv[(o * 50 + a) * 600 + j] == acc;
                acc += xv[(o * 50 + a) * 600 + j];
            }
        }
    CHECK(ok);
    res_free(&r);
    ot_tensor_free(ax);
    ot_tensor_free(x);
}

static void run_all(void);

static void test_table(void) {
    /* every entry is complete and ranges of one op do not overlap */
    int ok = 1;
    for (int i = 0; i < ot_ops_shape_count; i++) {
        const ot_op_def *d = &ot_ops_shape[i];
        ok &= d->infer && d->cpu && d->since <= d->until && (d->attr_size == 0) == (d->parse == NULL);
        for (int j = 0; j < i; j++) {
            const ot_op_def *e = &ot_ops_shape[j];
            if (strcmp(d->op_type, e->op_type) == 0 && d->since <= e->until && e->since <= d->until) ok = 0;
        }
    }
    CHECK(ok);
    CHECK(find_def("Split", 17) != find_def("Split", 18));
    CHECK(find_def("Trilu", 13) == NULL && find_def("Trilu", 14) != NULL);
    CHECK(find_def("Reshape", 21) && (find_def("Reshape", 21)->flags & OT_OP_VIEW));
}

int main(void) {
    /* Twice: single-threaded, then with 3 threads so work splits unevenly across threads. */
    for (int pass = 0; pass < 2; pass++) {
#ifdef _OPENMP
        omp_set_num_threads(pass == 0 ? 1 : 3);
#endif
        fprintf(stderr, "== %d thread(s)\n", pass == 0 ? 1 : 3);
        run_all();
    }
    return OT_TEST_EXIT();
}

static void run_all(void) {
    OT_RUN(test_table);
    OT_RUN(test_reshape);
    OT_RUN(test_flatten);
    OT_RUN(test_squeeze_unsqueeze);
    OT_RUN(test_identity_dropout);
    OT_RUN(test_transpose);
    OT_RUN(test_concat);
    OT_RUN(test_split);
    OT_RUN(test_slice);
    OT_RUN(test_gather);
    OT_RUN(test_expand);
    OT_RUN(test_shape);
    OT_RUN(test_constant_of_shape);
    OT_RUN(test_constant);
    OT_RUN(test_range);
    OT_RUN(test_trilu);
    OT_RUN(test_cumsum);
}
