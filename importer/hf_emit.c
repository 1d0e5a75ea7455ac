/* hf_emit.c — the graph-building vocabulary of the Hugging Face builders (see
 * hf_internal.h): weights as zero-copy initializers with shape checks that collect every
 * problem, constants, nodes with attributes, and the layers all three architectures share
 * (linear, layer norm, activations, attention).
 *
 * Everything here is sticky: after the first failure (b->st set, or a weight problem
 * recorded) helpers keep returning -1 and emit nothing that depends on a missing value. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/hf_internal.h"

static int fail(ot_hf_builder *b, ot_status st) {
    if (b->st == OT_OK) b->st = st;
    return -1;
}

static void add_problem(ot_hf_builder *b, const char *fmt, ...) OT_PRINTF(2, 3);
static void add_problem(ot_hf_builder *b, const char *fmt, ...) {
    char item[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    size_t need = b->len + strlen(item) + 3;
    if (need > b->cap) {
        size_t cap = need * 2;
        char *p = realloc(b->problems, cap);
        if (!p) {
            fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
            return;
        }
        b->problems = p;
        b->cap = cap;
    }
    b->len += (size_t)sprintf(b->problems + b->len, "%s%s", b->n_problems ? ", " : "", item);
    b->n_problems++;
}

int ot_hf_has(const ot_hf_builder *b, const char *name) {
    for (int f = 0; f < b->w->n_files; f++)
        if (ot_safetensors_find(b->w->files[f], name)) return 1;
    return 0;
}

static int new_value(ot_hf_builder *b, const char *name) {
    if (b->st != OT_OK) return -1;
    int idx;
    ot_status st = ot_graph_value(b->g, name, &idx);
    return st == OT_OK ? idx : fail(b, st);
}

int ot_hf_weight(ot_hf_builder *b, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (b->st != OT_OK) return -1;
    int have = ot_graph_find(b->g, name);
    if (have >= 0 && b->g->values[have].init) return have; /* tied: the same initializer */
    const int64_t want[2] = {d0, d1};
    char ws[64], gs[64];
    ot_shape_str(ws, sizeof ws, ndim, want);
    for (int f = 0; f < b->w->n_files; f++) {
        const ot_safetensors *st = b->w->files[f];
        for (int i = 0; i < ot_safetensors_count(st); i++) {
            if (strcmp(ot_safetensors_name(st, i), name) != 0) continue;
            const ot_tensor *t = ot_safetensors_tensor(st, i);
            b->w->used[f][i] = 1;
            if (!ot_shape_equal(t->ndim, t->dims, ndim, want)) {
                add_problem(b, "%s (expected %s, got %s)", name, ws, ot_shape_str(gs, sizeof gs, t->ndim, t->dims));
                return -1;
            }
            if (t->dtype != OT_F32 && t->dtype != OT_BF16 && t->dtype != OT_F16) {
                add_problem(b, "%s (dtype %s: F32, BF16 and F16 weights are supported)", name,
                            ot_safetensors_dtype_name(t->dtype) ? ot_safetensors_dtype_name(t->dtype) : "?");
                return -1;
            }
            int v = new_value(b, name);
            if (v < 0) return -1;
            ot_tensor *view;
            if (t->dtype == OT_F32) {
                if (!(view = malloc(sizeof *view))) return fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
                *view = *t;
                view->owned = 0; /* the mapped file, kept alive by the graph */
            } else {
                /* The graph computes in f32 (bf16/fp16 training narrows it again, exactly:
                 * widening loses nothing); exports write the weights back as stored. */
                ot_status st = ot_tensor_new(&view, OT_F32, t->ndim, t->dims);
                if (st != OT_OK) return fail(b, st);
                ot_convert(view->data, OT_F32, t->data, t->dtype, (size_t)ot_tensor_numel(t));
                if (b->g->weights_dtype == OT_UNDEFINED) b->g->weights_dtype = t->dtype;
            }
            ot_value *val = &b->g->values[v];
            val->init = view;
            val->dtype = OT_F32;
            val->ndim = t->ndim;
            memcpy(val->dims, t->dims, sizeof val->dims);
            return v;
        }
    }
    add_problem(b, "%s (missing, expected %s)", name, ws);
    return -1;
}

int ot_hf_weightf(ot_hf_builder *b, int ndim, int64_t d0, int64_t d1, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return ot_hf_weight(b, name, ndim, d0, d1);
}

static int const_tensor(ot_hf_builder *b, ot_dtype dt, int ndim, const int64_t *dims, const void *data) {
    if (b->st != OT_OK) return -1;
    char name[64];
    /* "hf." names mark the builder's own constants: exporters leave them out of weight files */
    snprintf(name, sizeof name, "hf.const_%d", b->counter++);
    int v = new_value(b, name);
    if (v < 0) return -1;
    ot_tensor *t;
    ot_status st = ot_tensor_new(&t, dt, ndim, dims);
    if (st != OT_OK) return fail(b, st);
    memcpy(t->data, data, ot_tensor_nbytes(t));
    ot_value *val = &b->g->values[v];
    val->init = t;
    val->dtype = dt;
    val->ndim = ndim;
    memcpy(val->dims, t->dims, sizeof val->dims);
    return v;
}

int ot_hf_const_i64(ot_hf_builder *b, int n, const int64_t *v) {
    int64_t d = n;
    return const_tensor(b, OT_I64, 1, &d, v);
}

int ot_hf_const_f32(ot_hf_builder *b, int ndim, const int64_t *dims, const float *v) {
    return const_tensor(b, OT_F32, ndim, dims, v);
}

int ot_hf_scalar(ot_hf_builder *b, float v) { return const_tensor(b, OT_F32, 0, NULL, &v); }

int ot_hf_op_named(ot_hf_builder *b, const char *op, const int *in, int n_in, const char *out_name) {
    if (b->st != OT_OK) return -1;
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0) return -1; /* a missing weight upstream: already recorded */
    char name[64];
    if (!out_name) {
        snprintf(name, sizeof name, "hf.%s_%d", op, b->counter++);
        out_name = name;
    }
    int out = new_value(b, out_name);
    if (out < 0) return -1;
    ot_status st = ot_graph_add_node(b->g, op, "", out_name, in, n_in, &out, 1, NULL);
    return st == OT_OK ? out : fail(b, st);
}

int ot_hf_op(ot_hf_builder *b, const char *op, const int *in, int n_in) { return ot_hf_op_named(b, op, in, n_in, NULL); }
int ot_hf_op1(ot_hf_builder *b, const char *op, int a) { return ot_hf_op(b, op, &a, 1); }
int ot_hf_op2(ot_hf_builder *b, const char *op, int a, int c) {
    int in[2] = {a, c};
    return ot_hf_op(b, op, in, 2);
}

/* A fresh attribute slot on the node that produced v (always the last node made). */
static ot_attr *new_attr(ot_hf_builder *b, int v, const char *name, ot_attr_type type) {
    if (b->st != OT_OK || v < 0) return NULL;
    ot_node *n = &b->g->nodes[b->g->n_nodes - 1];
    if (n->n_out < 1 || n->out[0] != v) {
        fail(b, ot_errorf(OT_E_INTERNAL, "attribute '%s' set on a value that is not the last node's output", name));
        return NULL;
    }
    ot_attr *a = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *a);
    if (!a) {
        fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
        return NULL;
    }
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = strdup(name))) {
        fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
        return NULL;
    }
    a->type = type;
    n->n_attrs++;
    return a;
}

void ot_hf_attr_int(ot_hf_builder *b, int v, const char *name, int64_t x) {
    ot_attr *a = new_attr(b, v, name, OT_ATTR_INT);
    if (a) a->i = x;
}

void ot_hf_attr_float(ot_hf_builder *b, int v, const char *name, float x) {
    ot_attr *a = new_attr(b, v, name, OT_ATTR_FLOAT);
    if (a) a->f = x;
}

void ot_hf_attr_ints(ot_hf_builder *b, int v, const char *name, int n, const int64_t *x) {
    ot_attr *a = new_attr(b, v, name, OT_ATTR_INTS);
    if (!a) return;
    if (!(a->ints = malloc((size_t)n * sizeof *x))) {
        fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
        return;
    }
    memcpy(a->ints, x, (size_t)n * sizeof *x);
    a->n = n;
}

void ot_hf_attr_tensor(ot_hf_builder *b, int v, const char *name, ot_tensor *t) {
    ot_attr *a = new_attr(b, v, name, OT_ATTR_TENSOR);
    if (a)
        a->t = t;
    else
        ot_tensor_free(t);
}

int ot_hf_input_ids(ot_hf_builder *b, const char *name) {
    int v = new_value(b, name);
    if (v < 0) return -1;
    int *in = realloc(b->g->inputs, (size_t)(b->g->n_inputs + 1) * sizeof *in);
    if (!in) return fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
    b->g->inputs = in;
    in[b->g->n_inputs++] = v;
    ot_value *val = &b->g->values[v];
    val->is_input = 1;
    val->dtype = OT_I64;
    val->ndim = 2;
    val->dims[0] = val->dims[1] = -1;
    val->dim_param[0] = strdup("batch");
    val->dim_param[1] = strdup("sequence");
    if (!val->dim_param[0] || !val->dim_param[1]) return fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
    return v;
}

void ot_hf_output(ot_hf_builder *b, int v, const char *name, int per_token, int64_t last) {
    /* the builder names the last node's output at creation (ot_hf_op_named); here it is
     * only declared an output */
    if (b->st != OT_OK || v < 0) return;
    if (strcmp(b->g->values[v].name, name) != 0) {
        fail(b, ot_errorf(OT_E_INTERNAL, "output '%s' is called '%s'", name, b->g->values[v].name));
        return;
    }
    int *out = realloc(b->g->outputs, (size_t)(b->g->n_outputs + 1) * sizeof *out);
    if (!out) {
        fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
        return;
    }
    b->g->outputs = out;
    out[b->g->n_outputs++] = v;
    ot_value *val = &b->g->values[v];
    val->is_output = 1;
    val->dtype = OT_F32;
    val->ndim = per_token ? 3 : 2;
    const char *syms[2] = {"batch", "sequence"};
    for (int d = 0; d < val->ndim - 1; d++) {
        val->dims[d] = -1;
        if (!(val->dim_param[d] = strdup(syms[d]))) fail(b, ot_errorf(OT_E_NOMEM, "out of memory"));
    }
    val->dims[val->ndim - 1] = last;
}

void ot_hf_lm_head(ot_hf_builder *b, int h, int embedding, int64_t d) {
    const ot_hf_config *c = b->cfg;
    int logits;
    if (c->tie) {
        int in[2] = {h, embedding};
        logits = ot_hf_op(b, "Gemm", in, 2);
        ot_hf_attr_int(b, logits, "transB", 1);
    } else {
        logits = ot_hf_linear(b, h, "lm_head", d, c->vocab, 0, 1);
    }
    int in[2] = {logits, b->bsd};
    ot_hf_output(b, ot_hf_op_named(b, "Reshape", in, 2, "logits"), "logits", 1, c->vocab);
}

/* ---- layers ---- */

int ot_hf_linear(ot_hf_builder *b, int x, const char *prefix, int64_t in, int64_t out, int bias, int transposed) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int w = transposed ? ot_hf_weight(b, name, 2, out, in) : ot_hf_weight(b, name, 2, in, out);
    int ins[3] = {x, w, -1};
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        ins[2] = ot_hf_weight(b, name, 1, out, 0);
    }
    int y = ot_hf_op(b, "Gemm", ins, bias ? 3 : 2);
    if (transposed) ot_hf_attr_int(b, y, "transB", 1);
    return y;
}

int ot_hf_layernorm(ot_hf_builder *b, int x, const char *prefix, int64_t d, double eps) {
    int g = ot_hf_weightf(b, 1, d, 0, "%s.weight", prefix);
    int beta = ot_hf_weightf(b, 1, d, 0, "%s.bias", prefix);
    int in[3] = {x, g, beta};
    int y = ot_hf_op(b, "LayerNormalization", in, 3);
    ot_hf_attr_int(b, y, "axis", -1);
    ot_hf_attr_float(b, y, "epsilon", (float)eps);
    return y;
}

int ot_hf_act_apply(ot_hf_builder *b, int x, ot_hf_act act) {
    switch (act) {
    case OT_HF_ACT_GELU_TANH: { /* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
        int x3 = ot_hf_op2(b, "Mul", ot_hf_op2(b, "Mul", x, x), x);
        int inner = ot_hf_op2(b, "Add", x, ot_hf_op2(b, "Mul", x3, ot_hf_scalar(b, 0.044715f)));
        int t = ot_hf_op1(b, "Tanh", ot_hf_op2(b, "Mul", inner, ot_hf_scalar(b, (float)sqrt(2.0 / M_PI))));
        int half_x = ot_hf_op2(b, "Mul", x, ot_hf_scalar(b, 0.5f));
        return ot_hf_op2(b, "Mul", half_x, ot_hf_op2(b, "Add", t, ot_hf_scalar(b, 1.0f)));
    }
    case OT_HF_ACT_GELU_ERF: { /* 0.5·x·(1 + erf(x/√2)) */
        int e = ot_hf_op1(b, "Erf", ot_hf_op2(b, "Div", x, ot_hf_scalar(b, (float)M_SQRT2)));
        int half_x = ot_hf_op2(b, "Mul", x, ot_hf_scalar(b, 0.5f));
        return ot_hf_op2(b, "Mul", half_x, ot_hf_op2(b, "Add", e, ot_hf_scalar(b, 1.0f)));
    }
    case OT_HF_ACT_SILU:
        return ot_hf_op2(b, "Mul", x, ot_hf_op1(b, "Sigmoid", x));
    case OT_HF_ACT_RELU:
        return ot_hf_op1(b, "Relu", x);
    }
    return fail(b, ot_errorf(OT_E_INTERNAL, "unknown activation %d", (int)act));
}

int ot_hf_embed(ot_hf_builder *b, int table, int ids, int64_t d) {
    int64_t shape[2] = {-1, d};
    return ot_hf_op2(b, "Reshape", ot_hf_op2(b, "Gather", table, ids), ot_hf_const_i64(b, 2, shape));
}

int ot_hf_split_heads(ot_hf_builder *b, int x, int64_t heads, int64_t hd) {
    int64_t hs[2] = {heads, hd};
    int shape_in[2] = {b->bs, ot_hf_const_i64(b, 2, hs)};
    int shape = ot_hf_op(b, "Concat", shape_in, 2);
    ot_hf_attr_int(b, shape, "axis", 0);
    int y = ot_hf_op1(b, "Transpose", ot_hf_op2(b, "Reshape", x, shape)); /* [B,S,H,hd] -> [B,H,S,hd] */
    const int64_t perm[4] = {0, 2, 1, 3};
    ot_hf_attr_ints(b, y, "perm", 4, perm);
    return y;
}

int ot_hf_merge_heads(ot_hf_builder *b, int x, int64_t d) {
    int t = ot_hf_op1(b, "Transpose", x);
    const int64_t perm[4] = {0, 2, 1, 3};
    ot_hf_attr_ints(b, t, "perm", 4, perm);
    int64_t shape[2] = {-1, d};
    return ot_hf_op2(b, "Reshape", t, ot_hf_const_i64(b, 2, shape));
}

int ot_hf_attention(ot_hf_builder *b, int q, int k, int v, int mask, float scale) {
    int kt = ot_hf_op1(b, "Transpose", k);
    const int64_t perm[4] = {0, 1, 3, 2};
    ot_hf_attr_ints(b, kt, "perm", 4, perm);
    int s = ot_hf_op2(b, "Mul", ot_hf_op2(b, "MatMul", q, kt), ot_hf_scalar(b, scale));
    if (mask >= 0) s = ot_hf_op2(b, "Add", s, mask);
    int p = ot_hf_op1(b, "Softmax", s);
    ot_hf_attr_int(b, p, "axis", -1);
    return ot_hf_op2(b, "MatMul", p, v);
}

int ot_hf_positions(ot_hf_builder *b) {
    int64_t zero = 0, one = 1;
    int64_t none = 0;
    /* Range wants scalars: squeeze the [1]-shaped sequence length */
    int len = ot_hf_op2(b, "Squeeze", b->seq, ot_hf_const_i64(b, 1, &none));
    int in[3] = {const_tensor(b, OT_I64, 0, NULL, &zero), len, const_tensor(b, OT_I64, 0, NULL, &one)};
    return ot_hf_op(b, "Range", in, 3);
}

int ot_hf_causal_mask(ot_hf_builder *b) {
    int shape_in[2] = {b->seq, b->seq};
    int shape = ot_hf_op(b, "Concat", shape_in, 2);
    ot_hf_attr_int(b, shape, "axis", 0);
    int full = ot_hf_op1(b, "ConstantOfShape", shape);
    ot_tensor *t;
    int64_t one = 1;
    ot_status st = ot_tensor_new(&t, OT_F32, 1, &one);
    if (st != OT_OK) return fail(b, st);
    *(float *)t->data = -3.4028234663852886e38f; /* torch.finfo(float32).min, as transformers uses */
    ot_hf_attr_tensor(b, full, "value", t);
    int in[2] = {full, const_tensor(b, OT_I64, 0, NULL, &one)}; /* k = 1: strictly above the diagonal */
    int m = ot_hf_op(b, "Trilu", in, 2);
    ot_hf_attr_int(b, m, "upper", 1);
    return m;
}
