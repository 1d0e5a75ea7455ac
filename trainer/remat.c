/* remat.c — activation checkpointing by block recomputation; see remat.h.
 *
 * Owns: assigning forward nodes to blocks, deciding which block values are internal, cloning
 * the producers backward needs, redirecting backward reads to the clones and placing the
 * clones just before their first reader. Never changes a forward node or a backward node's
 * op; only backward nodes' input indices change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "importer/module_path.h"
#include "runtime/op.h"
#include "trainer/remat.h"

/* ---- blocks ---- */

/* "a.b.3.c" -> *block = malloc'd "a.b.3" (through the first all-digit component), or NULL
 * when no component is all digits. */
static ot_status block_prefix(const char *module, char **block) {
    *block = NULL;
    for (const char *p = module;;) {
        const char *end = strchr(p, '.');
        size_t len = end ? (size_t)(end - p) : strlen(p), k = 0;
        while (k < len && p[k] >= '0' && p[k] <= '9') k++;
        if (len > 0 && k == len) {
            if (!(*block = strndup(module, (size_t)(p + len - module)))) return ot_errorf(OT_E_NOMEM, "out of memory");
            return OT_OK;
        }
        if (!end) return OT_OK;
        p = end + 1;
    }
}

/* The module named by a weight: "<module>.weight" or "<module>.bias"; NULL otherwise. */
static char *weight_module(const char *name) {
    char *m = ot_module_from_weight(name);
    if (m) return m;
    size_t n = strlen(name);
    if (strncmp(name, "onnx::", 6) == 0 || n <= 5 || strcmp(name + n - 5, ".bias") != 0) return NULL;
    return strndup(name, n - 5);
}

/* Sets *block from `module` (consumed) and marks the answer known; a NULL module is OOM. */
static ot_status from_module(char *module, char **block, int *known) {
    if (!module) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = block_prefix(module, block);
    free(module);
    *known = 1;
    return st;
}

ot_status ot_remat_node_block(const ot_graph *g, const ot_node *n, char **block, int *known) {
    *block = NULL;
    *known = 0;
    const char *name = n->name ? n->name : "";
    /* 1. the node's own name */
    if (name[0] == '/') { /* exporter scope; "/Op" is the root module: known, no block */
        char *m = ot_module_from_scope(name);
        if (!m) {
            *known = 1;
            return OT_OK;
        }
        return from_module(m, block, known);
    }
    if (name[0] && strncmp(name, "hf.", 3) != 0) {
        const char *slash = strchr(name, '/');
        if (slash) return from_module(strndup(name, (size_t)(slash - name)), block, known);
        if (strchr(name, '.')) return from_module(strdup(name), block, known);
    }
    /* 2. a weight it reads */
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v < 0 || !g->values[v].init || strncmp(g->values[v].name, "hf.", 3) == 0) continue;
        char *m = weight_module(g->values[v].name);
        if (m) return from_module(m, block, known);
    }
    return OT_OK; /* 3. left to the caller: inherit from the inputs' producers */
}

/* blk[i] for each forward node: block id or -1; *n_blocks counts the ids. */
static ot_status assign_blocks(const ot_graph *g, int n_forward, const int *prod, int *blk, int *n_blocks) {
    const int nv = g->n_values;
    ot_strmap *ids = ot_strmap_new();
    unsigned char *named = calloc((size_t)(n_forward ? n_forward : 1), 1); /* rule 1 or 2 applied */
    int *cons = malloc((size_t)(nv ? nv : 1) * sizeof *cons); /* per value: its readers' block */
    ot_status st = ids && named && cons ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    enum { NO_READER = -2, MIXED = -3 };
    *n_blocks = 0;
    for (int i = 0; i < n_forward; i++) blk[i] = -1;
    for (int i = 0; st == OT_OK && i < n_forward; i++) {
        const ot_node *n = &g->nodes[i];
        char *block = NULL;
        int known = 0;
        if ((st = ot_remat_node_block(g, n, &block, &known)) != OT_OK) break;
        if (known) {
            named[i] = 1;
            if (block) {
                int id;
                if (!ot_strmap_get(ids, block, &id)) {
                    id = (*n_blocks)++;
                    st = ot_strmap_put(ids, block, id);
                }
                blk[i] = id;
            }
            free(block);
            continue;
        }
        /* 3. inherit: the latest block among the producers of its inputs */
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v >= 0 && prod[v] >= 0 && prod[v] < i && blk[prod[v]] > blk[i]) blk[i] = blk[prod[v]];
        }
    }
    /* 3b. An inherited node that does not read a block's named (weighted) node directly, and
     * whose readers all lie in one block, moves there: a norm's weightless statistics
     * (Pow, ReduceMean, Sqrt, Div before the weight's Mul) belong to the block whose weight
     * they feed, not to the block whose output they read. Walked backwards, so whole
     * chains move; readers are final before their producers are visited. */
    for (int v = 0; st == OT_OK && v < nv; v++) cons[v] = g->values[v].is_output ? MIXED : NO_READER;
    for (int i = n_forward - 1; st == OT_OK && i >= 0; i--) {
        const ot_node *n = &g->nodes[i];
        int anchored = named[i], to = NO_READER;
        for (int k = 0; !anchored && k < n->n_in; k++) {
            int v = n->in[k];
            anchored = v >= 0 && prod[v] >= 0 && prod[v] < n_forward && named[prod[v]] && blk[prod[v]] >= 0;
        }
        for (int k = 0; !anchored && k < n->n_out && to != MIXED; k++) {
            int c = n->out[k] >= 0 ? cons[n->out[k]] : NO_READER;
            if (c == NO_READER) continue;
            to = to == NO_READER || to == c ? c : MIXED;
        }
        if (!anchored && to >= -1) blk[i] = to;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            cons[v] = cons[v] == NO_READER || cons[v] == blk[i] ? blk[i] : MIXED;
        }
    }
    ot_strmap_free(ids);
    free(named);
    free(cons);
    return st;
}

/* ---- cloning ---- */

static ot_status copy_attr(ot_attr *dst, const ot_attr *src) {
    memset(dst, 0, sizeof *dst);
    dst->type = src->type;
    dst->f = src->f;
    dst->i = src->i;
    dst->n = src->n;
    size_t cnt = (size_t)(src->n > 0 ? src->n : 1);
    int ok = (dst->name = strdup(src->name)) != NULL;
    if (ok && src->s) ok = (dst->s = strdup(src->s)) != NULL;
    if (ok && src->floats) ok = (dst->floats = malloc(cnt * sizeof(float))) != NULL;
    if (ok && src->floats && src->n > 0) memcpy(dst->floats, src->floats, (size_t)src->n * sizeof(float));
    if (ok && src->ints) ok = (dst->ints = malloc(cnt * sizeof(int64_t))) != NULL;
    if (ok && src->ints && src->n > 0) memcpy(dst->ints, src->ints, (size_t)src->n * sizeof(int64_t));
    if (ok && src->strings) ok = (dst->strings = calloc(cnt, sizeof(char *))) != NULL;
    for (int k = 0; ok && src->strings && k < src->n; k++) ok = (dst->strings[k] = strdup(src->strings[k])) != NULL;
    if (!ok) return ot_errorf(OT_E_NOMEM, "out of memory copying attribute '%s'", src->name);
    if (src->t) return ot_tensor_clone(&dst->t, src->t);
    return OT_OK;
}

/* Appends a copy of node p reading `in`, writing `out`, named "<name>/remat". */
static ot_status clone_node(ot_graph *g, int p, const int *in, const int *out) {
    char name[1024];
    const ot_node *src = &g->nodes[p];
    if (src->name && src->name[0]) snprintf(name, sizeof name, "%s/remat", src->name);
    else snprintf(name, sizeof name, "%s_%d/remat", src->op_type, p);
    int idx;
    OT_TRY(ot_graph_add_node(g, src->op_type, src->domain, name, in, src->n_in, out, src->n_out, &idx));
    src = &g->nodes[p]; /* the node array may have moved */
    ot_node *dst = &g->nodes[idx];
    if (!src->n_attrs) return OT_OK;
    if (!(dst->attrs = calloc((size_t)src->n_attrs, sizeof *dst->attrs))) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (int a = 0; a < src->n_attrs; a++) {
        dst->n_attrs = a + 1; /* counted before the copy: a half-copied attribute is still freed */
        OT_TRY(copy_attr(&dst->attrs[a], &src->attrs[a]));
    }
    return OT_OK;
}

/* A fresh value "<name>/remat" with v's declared type. */
static ot_status clone_value(ot_graph *g, int v, int *out) {
    char name[1024];
    snprintf(name, sizeof name, "%s/remat", g->values[v].name); /* new: run() checked the names */
    OT_TRY(ot_graph_value(g, name, out));
    const ot_value *src = &g->values[v];
    ot_value *dst = &g->values[*out];
    dst->dtype = src->dtype;
    dst->ndim = src->ndim;
    memcpy(dst->dims, src->dims, sizeof dst->dims);
    for (int d = 0; d < OT_MAX_DIMS; d++)
        if (src->dim_param[d] && !(dst->dim_param[d] = strdup(src->dim_param[d])))
            return ot_errorf(OT_E_NOMEM, "out of memory");
    return OT_OK;
}

static const ot_op_def *node_def(const ot_graph *g, const ot_node *n) {
    return ot_op_find(n->domain, n->op_type, (int)ot_graph_opset(g, n->domain), NULL);
}

/* ---- the pass ---- */

typedef struct {
    int nv;                 /* values before the pass (the per-value arrays' length) */
    int *prod;              /* per value: producing node, -1 */
    int *blk;               /* per forward node: block id, -1 */
    unsigned char *cls;     /* per value: 1 static (folded by the planner), 2 read outside its block */
    unsigned char *need;    /* per forward node: cloned */
    int *remat;             /* per value: its clone, -1 */
    int *first;             /* per block: first backward node reading a clone (n_nodes: none) */
    int *clone_blk;         /* per clone, in creation order: its block */
    ot_node *order;
} remat_work;

static void work_free(remat_work *w) {
    free(w->prod), free(w->blk), free(w->cls), free(w->need), free(w->remat), free(w->first), free(w->clone_blk);
    free(w->order);
}

enum { CLS_STATIC = 1, CLS_SHARED = 2 };

/* Node inputs + outputs that fit the stack-free scratch; wider nodes get their own. */
#define OT_MAX_IO_FALLBACK 64

static int internal(const remat_work *w, int n_forward, int v) {
    return v >= 0 && v < w->nv && w->prod[v] >= 0 && w->prod[v] < n_forward && w->blk[w->prod[v]] >= 0 && !w->cls[v];
}

static ot_status run(ot_graph *g, int n_forward, ot_remat_stats *stats, remat_work *w) {
    const int nv = g->n_values, nn = g->n_nodes;
    w->nv = nv;
    w->prod = malloc((size_t)(nv ? nv : 1) * sizeof *w->prod);
    w->blk = malloc((size_t)(n_forward ? n_forward : 1) * sizeof *w->blk);
    w->cls = calloc((size_t)(nv ? nv : 1), 1);
    w->need = calloc((size_t)(n_forward ? n_forward : 1), 1);
    w->remat = malloc((size_t)(nv ? nv : 1) * sizeof *w->remat);
    if (!w->prod || !w->blk || !w->cls || !w->need || !w->remat) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (int v = 0; v < nv; v++) w->prod[v] = -1, w->remat[v] = -1;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0) w->prod[g->nodes[i].out[k]] = i;
    /* The forward prefix must be closed: no forward node reads a backward value. */
    for (int i = 0; i < n_forward; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && w->prod[v] >= n_forward)
                return ot_errorf(OT_E_INTERNAL, "activation checkpointing: forward %s reads '%s', made by backward %s; "
                                 "the first %d nodes are not the forward graph", ot_node_label(g, &g->nodes[i]),
                                 g->values[v].name, ot_node_label(g, &g->nodes[w->prod[v]]), n_forward);
        }

    int n_blocks = 0;
    OT_TRY(assign_blocks(g, n_forward, w->prod, w->blk, &n_blocks));
    if (n_blocks == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "activation checkpointing: no transformer blocks found; it recomputes "
                         "numbered modules (\"transformer.h.0\", \"model.layers.3\"), named by node scopes "
                         "(\"/transformer/h.0/attn/MatMul\") or weights (\"model.layers.0.mlp.up_proj.weight\"), "
                         "and none of the %d forward nodes has one", n_forward);

    /* Static values: the planner folds them (initializers, shapes, what only they feed). */
    for (int v = 0; v < nv; v++)
        if (g->values[v].init && !g->values[v].is_param) w->cls[v] = CLS_STATIC;
    for (int i = 0; i < n_forward; i++) {
        const ot_node *n = &g->nodes[i];
        const ot_op_def *def = node_def(g, n);
        int all = def && !(def->flags & OT_OP_NO_FOLD);
        for (int k = 0; all && !(def->flags & OT_OP_SHAPE_ONLY) && k < n->n_in; k++)
            all = n->in[k] < 0 || w->cls[n->in[k]] == CLS_STATIC;
        for (int k = 0; all && k < n->n_out; k++)
            if (n->out[k] >= 0) w->cls[n->out[k]] = CLS_STATIC;
    }
    /* Values read outside their block (or graph outputs) stay alive as they are. */
    for (int v = 0; v < nv; v++)
        if (g->values[v].is_output && !w->cls[v]) w->cls[v] = CLS_SHARED;
    for (int i = 0; i < n_forward; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && !w->cls[v] && w->prod[v] >= 0 && w->blk[w->prod[v]] != w->blk[i]) w->cls[v] = CLS_SHARED;
        }

    /* What backward reads, and transitively what that needs within the block. */
    w->first = malloc((size_t)n_blocks * sizeof *w->first);
    if (!w->first) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (int b = 0; b < n_blocks; b++) w->first[b] = nn;
    for (int i = n_forward; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (!internal(w, n_forward, v)) continue;
            w->need[w->prod[v]] = 1;
            int b = w->blk[w->prod[v]];
            if (i < w->first[b]) w->first[b] = i;
        }
    int n_clones = 0;
    for (int p = n_forward - 1; p >= 0; p--) {
        if (!w->need[p]) continue;
        const ot_node *n = &g->nodes[p];
        const ot_op_def *def = node_def(g, n);
        if (def && (def->flags & OT_OP_NO_FOLD) && !(strcmp(n->domain, "ai.onnxtune") == 0 &&
                                                     strcmp(n->op_type, "TrainingDropout") == 0))
            return ot_errorf(OT_E_UNSUPPORTED, "activation checkpointing: %s is random and would give a different "
                             "result when recomputed for the backward pass", ot_node_label(g, n));
        n_clones++;
        for (int k = 0; k < n->n_in; k++)
            if (internal(w, n_forward, n->in[k])) w->need[w->prod[n->in[k]]] = 1;
    }
    for (int p = 0; p < n_forward; p++) /* names are checked before anything changes */
        for (int k = 0; w->need[p] && k < g->nodes[p].n_out; k++) {
            char name[1024];
            int v = g->nodes[p].out[k];
            if (v < 0) continue;
            snprintf(name, sizeof name, "%s/remat", g->values[v].name);
            if (ot_graph_find(g, name) >= 0)
                return ot_errorf(OT_E_INVALID, "activation checkpointing: value '%s' already exists (was the graph "
                                 "checkpointed twice?)", name);
        }

    /* Clones, appended in forward order. */
    w->clone_blk = malloc((size_t)(n_clones ? n_clones : 1) * sizeof *w->clone_blk);
    int *io = malloc((size_t)(OT_MAX_IO_FALLBACK) * sizeof *io);
    if (!w->clone_blk || !io) {
        free(io);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    ot_status st = OT_OK;
    int c = 0;
    for (int p = 0; st == OT_OK && p < n_forward; p++) {
        if (!w->need[p]) continue;
        int n_in = g->nodes[p].n_in, n_out = g->nodes[p].n_out;
        int *buf = n_in + n_out <= OT_MAX_IO_FALLBACK ? io : malloc((size_t)(n_in + n_out) * sizeof *buf);
        if (!buf) {
            st = ot_errorf(OT_E_NOMEM, "out of memory");
            break;
        }
        for (int k = 0; st == OT_OK && k < n_out; k++) {
            int v = g->nodes[p].out[k];
            buf[n_in + k] = -1;
            if (v >= 0 && (st = clone_value(g, v, &w->remat[v])) == OT_OK) buf[n_in + k] = w->remat[v];
        }
        for (int k = 0; k < n_in; k++) {
            int v = g->nodes[p].in[k];
            buf[k] = internal(w, n_forward, v) ? w->remat[v] : v;
        }
        if (st == OT_OK) st = clone_node(g, p, buf, buf + n_in);
        w->clone_blk[c++] = w->blk[p];
        if (buf != io) free(buf);
    }
    free(io);
    OT_TRY(st);

    /* Backward reads go to the clones. */
    for (int i = n_forward; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (internal(w, n_forward, v)) g->nodes[i].in[k] = w->remat[v];
        }

    /* Order: forward, then backward with each block's clones right before their first reader. */
    w->order = malloc((size_t)g->n_nodes * sizeof *w->order);
    if (!w->order) return ot_errorf(OT_E_NOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n_forward; i++) w->order[m++] = g->nodes[i];
    for (int i = n_forward; i < nn; i++) {
        for (int b = 0; b < n_blocks; b++) {
            if (w->first[b] != i) continue;
            for (int k = 0; k < n_clones; k++)
                if (w->clone_blk[k] == b) w->order[m++] = g->nodes[nn + k];
        }
        w->order[m++] = g->nodes[i];
    }
    if (m != g->n_nodes)
        return ot_errorf(OT_E_INTERNAL, "activation checkpointing: placed %d of %d nodes", m, g->n_nodes);
    memcpy(g->nodes, w->order, (size_t)m * sizeof *w->order);
    if (stats) stats->n_blocks = n_blocks, stats->n_recomputed_nodes = n_clones;
    return ot_graph_toposort(g);
}

ot_status ot_remat_blocks(ot_graph *g, int n_forward, ot_remat_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (n_forward < 0 || n_forward > g->n_nodes)
        return ot_errorf(OT_E_INVALID, "activation checkpointing: %d forward nodes, but the graph has %d", n_forward,
                         g->n_nodes);
    remat_work w = {0};
    ot_status st = run(g, n_forward, stats, &w);
    work_free(&w);
    return st;
}
