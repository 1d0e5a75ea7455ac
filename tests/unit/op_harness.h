/* op_harness.h — runs one op's registry entry the way the planner does, for the op-family
 * unit tests (tests/unit/test_ops_*.c): build a node with attributes by hand, call the
 * entry's parse, infer and CPU kernel, and get the outputs back as tensors.
 *
 * Every output buffer is filled with a pattern before the kernel runs (so a kernel that
 * skips an element shows up as a wrong value) and followed by OH_GUARD guard bytes that
 * must survive it: each run adds one CHECK per output for the guard. Tensors and buffers
 * are heap-allocated and owned by the caller (free with ot_tensor_free); allocation
 * failures end the test binary with status 2. Header-only, all static inline; include it
 * after ot_test.h's CHECK macros (it includes ot_test.h itself). Expected values stay in
 * each test file, computed independently of the kernels. */
#ifndef OT_OP_HARNESS_H
#define OT_OP_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph.h"
#include "ot_test.h"
#include "runtime/op.h"

#define OH_GUARD 64   /* guard bytes after every output buffer */
#define OH_FILL 0xCD  /* what output buffers hold before the kernel writes them */
#define OH_MAX_OUT 8  /* outputs one run can request */

/* ---- tensors ---------------------------------------------------------------------------- */

/* A heap tensor holding a copy of `data` (zeros when NULL). */
static inline ot_tensor *oh_tensor(ot_dtype dt, int ndim, const int64_t *dims, const void *data) {
    ot_tensor *t = NULL;
    if (ot_tensor_new(&t, dt, ndim, dims) != OT_OK) {
        fprintf(stderr, "ot_tensor_new: %s\n", ot_last_error());
        exit(2);
    }
    if (data && ot_tensor_nbytes(t)) memcpy(t->data, data, ot_tensor_nbytes(t));
    return t;
}
static inline ot_tensor *oh_f32(int ndim, const int64_t *dims, const float *v) {
    return oh_tensor(OT_F32, ndim, dims, v);
}

/* A fixed LCG, so every run of a test sees the same inputs; each file seeds it once at the
 * top of main with its own constant. */
static unsigned oh_rng_state = 1u;
static inline void oh_seed(unsigned s) { oh_rng_state = s; }
static inline float oh_frand(void) { /* uniform in [-1, 1) */
    oh_rng_state = oh_rng_state * 1664525u + 1013904223u;
    return (float)((oh_rng_state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}
/* f32 tensor of offset + scale * oh_frand() per element. */
static inline ot_tensor *oh_rand_f32(int ndim, const int64_t *dims, float scale, float offset) {
    ot_tensor *t = oh_tensor(OT_F32, ndim, dims, NULL);
    float *p = t->data;
    for (int64_t i = 0; i < ot_tensor_numel(t); i++) p[i] = offset + scale * oh_frand();
    return t;
}

/* ---- attributes (by value; name and payload are borrowed, not copied) ------------------- */

static inline ot_attr oh_attr(const char *name, ot_attr_type type) {
    ot_attr a;
    memset(&a, 0, sizeof a);
    a.name = (char *)name;
    a.type = type;
    return a;
}
static inline ot_attr oh_attr_int(const char *name, int64_t v) {
    ot_attr a = oh_attr(name, OT_ATTR_INT);
    a.i = v;
    return a;
}
static inline ot_attr oh_attr_float(const char *name, float v) {
    ot_attr a = oh_attr(name, OT_ATTR_FLOAT);
    a.f = v;
    return a;
}
static inline ot_attr oh_attr_str(const char *name, const char *s) {
    ot_attr a = oh_attr(name, OT_ATTR_STRING);
    a.s = (char *)s;
    return a;
}
static inline ot_attr oh_attr_ints(const char *name, int n, const int64_t *v) {
    ot_attr a = oh_attr(name, OT_ATTR_INTS);
    a.n = n;
    a.ints = (int64_t *)v;
    return a;
}

/* ---- running an entry ------------------------------------------------------------------- */

/* n_in against the entry's input range; a test error (not the op's) when outside it. */
static inline ot_status oh_check_arity(const ot_op_def *def, int n_in) {
    if (n_in < def->min_in || (def->max_in >= 0 && n_in > def->max_in))
        return ot_errorf(OT_E_INVALID, "test: %s takes %d..%d inputs, got %d", def->op_type, def->min_in, def->max_in,
                         n_in);
    return OT_OK;
}

/* parse (when the entry has one), infer and, unless infer_only, the CPU kernel of `def` on
 * `node` (n_in / n_out already set). outs[k] is a zeroed tensor to fill, or NULL for an
 * omitted output. After a successful kernel each requested output's data is a malloc'd
 * buffer (OH_GUARD bytes longer than the tensor) the caller frees; on any failure the
 * buffers are freed and data is NULL. Returns the failing stage's status. */
static inline ot_status oh_exec(const ot_op_def *def, ot_node *node, int opset, int n_in,
                                const ot_tensor *const *in, int n_out, ot_tensor *const *outs, int infer_only) {
    if (n_out > OH_MAX_OUT) return ot_errorf(OT_E_INTERNAL, "test: %d outputs, at most %d", n_out, OH_MAX_OUT);
    void *attr = calloc(1, def->attr_size + 1);
    if (!attr) exit(2);
    ot_status st = def->parse ? def->parse(node, opset, attr) : OT_OK;
    ot_op_ctx c = {.graph = NULL, .node = node, .attr = def->attr_size ? attr : NULL, .opset = opset,
                   .n_in = n_in, .n_out = n_out, .in = in, .out = (ot_tensor **)outs};
    if (st == OT_OK) st = def->infer(&c);
    if (st == OT_OK && !infer_only) {
        size_t nb[OH_MAX_OUT] = {0};
        for (int k = 0; k < n_out; k++) {
            if (!outs[k]) continue;
            nb[k] = ot_tensor_nbytes(outs[k]);
            unsigned char *buf = malloc(nb[k] + OH_GUARD);
            if (!buf) exit(2);
            memset(buf, OH_FILL, nb[k] + OH_GUARD);
            outs[k]->data = buf;
        }
        st = def->cpu(&c);
        for (int k = 0; k < n_out; k++) {
            if (!outs[k]) continue;
            const unsigned char *buf = outs[k]->data;
            int guard_ok = 1;
            for (size_t i = 0; i < OH_GUARD; i++) guard_ok &= buf[nb[k] + i] == OH_FILL;
            CHECK(guard_ok);
            if (st != OT_OK) free(outs[k]->data), outs[k]->data = NULL;
        }
    }
    free(attr);
    return st;
}

/* Runs `op` (default domain) at `opset` through the registry on a node named "t" with the
 * given attributes. want[k] says whether output k is requested (NULL: all n_out). out[k]
 * receives a new owned tensor for each requested output on success, NULL otherwise. */
static inline ot_status oh_run_n(const char *op, int opset, const ot_attr *attrs, int n_attrs, int n_in,
                                 const ot_tensor *const *in, int n_out, const int *want, ot_tensor **out) {
    for (int k = 0; k < n_out; k++) out[k] = NULL;
    int known = 0;
    const ot_op_def *def = ot_op_find("", op, opset, &known);
    if (!def) return ot_errorf(OT_E_UNSUPPORTED, "test: no entry for %s at opset %d (known: %d)", op, opset, known);
    OT_TRY(oh_check_arity(def, n_in));
    ot_node node;
    memset(&node, 0, sizeof node);
    node.name = (char *)"t";
    node.op_type = (char *)op;
    node.domain = (char *)"";
    node.n_in = n_in;
    node.n_out = n_out;
    node.n_attrs = n_attrs;
    node.attrs = (ot_attr *)attrs;
    ot_tensor o[OH_MAX_OUT];
    ot_tensor *outs[OH_MAX_OUT] = {NULL};
    memset(o, 0, sizeof o);
    for (int k = 0; k < n_out && k < OH_MAX_OUT; k++)
        if (!want || want[k]) outs[k] = &o[k];
    ot_status st = oh_exec(def, &node, opset, n_in, in, n_out, outs, 0);
    for (int k = 0; st == OT_OK && k < n_out; k++) {
        if (!outs[k]) continue;
        out[k] = oh_tensor(o[k].dtype, o[k].ndim, o[k].dims, o[k].data);
        free(o[k].data);
    }
    return st;
}

/* oh_run_n for output 0 only. */
static inline ot_status oh_run(const char *op, int opset, const ot_attr *attrs, int n_attrs, int n_in,
                               const ot_tensor *const *in, ot_tensor **out) {
    return oh_run_n(op, opset, attrs, n_attrs, n_in, in, 1, NULL, out);
}

#endif
