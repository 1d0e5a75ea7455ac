/* session.c — builds the trainable graph and its plan; runs one forward+backward step.
 * See session.h for the invariants. The order of construction matters: parameters first
 * (LoRA rewrite or unfreezing), then the loss head, a forward plan for value metadata,
 * autodiff, and the final plan over forward + backward. The cross-entropy loss heads also
 * produce the mean token accuracy (their output 2), a plan output after the gradients that
 * autodiff never differentiates (it starts from the loss alone). */
#include "trainer/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnxtune/export.h"
#include "onnxtune/importer.h"
#include "core/cpu.h"
#include "core/lowp.h"
#include "trainer/autodiff.h"

/* ---- parameters ---- */

/* Copies an initializer into owned, writable f32 memory and marks it trainable (a plan-only
 * session, which never writes it, leaves it where it is). */
static ot_status make_param(ot_graph *g, int v, int plan_only) {
    ot_value *val = &g->values[v];
    if (val->init->dtype != OT_F32)
        return ot_errorf(OT_E_UNSUPPORTED, "weight '%s' is %s; fp32 training needs f32 weights", val->name,
                         ot_dtype_name(val->init->dtype));
    if (!val->init->owned && !plan_only) {
        ot_tensor *copy;
        OT_TRY(ot_tensor_clone(&copy, val->init));
        ot_tensor_free(val->init);
        val->init = copy;
    }
    val->is_param = 1;
    return OT_OK;
}

static int name_matches(const char *name, const ot_strlist *l) {
    for (int i = 0; i < l->n; i++) {
        if (ot_module_matches(name, l->v[i])) return 1;
        /* also a module prefix: "transformer.h.0" freezes everything under it */
        size_t n = strlen(l->v[i]);
        if (strncmp(name, l->v[i], n) == 0 && name[n] == '.') return 1;
    }
    return 0;
}

/* The exporter keeps a tied embedding twice: E [V, d] for the Gather and a folded Eᵀ
 * [d, V] for the output MatMul. Finds such a pair and makes the MatMul read Transpose(E),
 * so E trains once. */
static ot_status tie_embeddings(ot_session *s, const ot_linear *lin, int n_lin) {
    ot_graph *g = s->g;
    s->tied_source = s->tied_copy = -1;
    for (int i = 0; i < n_lin; i++) {
        const ot_tensor *wt = g->values[lin[i].weight].init;
        if (lin[i].w_transposed || wt->dtype != OT_F32) continue;
        for (int n = 0; n < g->n_nodes; n++) {
            const ot_node *node = &g->nodes[n];
            if (strcmp(node->op_type, "Gather") != 0 || node->n_in < 1 || node->in[0] < 0) continue;
            const ot_tensor *e = g->values[node->in[0]].init;
            if (!e || e->dtype != OT_F32 || e->ndim != 2 || e->dims[0] != wt->dims[1] || e->dims[1] != wt->dims[0])
                continue;
            const float *ed = e->data, *td = wt->data;
            int64_t V = e->dims[0], d = e->dims[1], same = 1;
            for (int64_t r = 0; r < V && same; r++)
                for (int64_t c = 0; c < d && same; c++) same = ed[r * d + c] == td[c * V + r];
            if (!same) continue;
            /* MatMul(h, Eᵀ copy) -> MatMul(h, Transpose(E)) */
            char name[1024];
            int tv, idx;
            snprintf(name, sizeof name, "%s/tied_transpose", g->values[node->in[0]].name);
            OT_TRY(ot_graph_value(g, name, &tv));
            int src = g->nodes[n].in[0];
            OT_TRY(ot_graph_add_node(g, "Transpose", "", name, &src, 1, &tv, 1, &idx));
            ot_node *t = &g->nodes[idx];
            t->attrs = calloc(1, sizeof *t->attrs);
            if (!t->attrs) return ot_errorf(OT_E_NOMEM, "out of memory");
            t->n_attrs = 1;
            t->attrs[0].name = strdup("perm");
            t->attrs[0].type = OT_ATTR_INTS;
            t->attrs[0].n = 2;
            t->attrs[0].ints = malloc(2 * sizeof(int64_t));
            if (!t->attrs[0].name || !t->attrs[0].ints) return ot_errorf(OT_E_NOMEM, "out of memory");
            t->attrs[0].ints[0] = 1, t->attrs[0].ints[1] = 0;
            s->tied_source = src;
            s->tied_copy = lin[i].weight;
            g->nodes[lin[i].node].in[1] = tv;
            return ot_graph_toposort(g);
        }
    }
    return OT_OK;
}

/* A model weight, as opposed to a constant the exporter made (masks, scalars, index tables):
 * a float initializer of two or more elements that is a linear layer's weight (module set) or
 * has a ".weight"/".bias" name. */
static int weight_like(const ot_value *val, const char *module) {
    if (!val->init || !ot_dtype_is_float(val->init->dtype) || ot_tensor_numel(val->init) < 2) return 0;
    size_t n = strlen(val->name);
    return module || (n > 7 && !strcmp(val->name + n - 7, ".weight")) || (n > 5 && !strcmp(val->name + n - 5, ".bias"));
}

static const char *linear_module(const ot_linear *lin, int n_lin, int v) {
    for (int i = 0; i < n_lin; i++)
        if (lin[i].weight == v) return lin[i].module;
    return NULL;
}

/* Full fine-tuning: every f32 weight that is a module parameter (".weight"/".bias" names,
 * or a linear layer's weight) trains, except frozen ones. Constants the exporter made
 * (masks, scalars) stay frozen. */
static ot_status unfreeze(ot_session *s) {
    ot_graph *g = s->g;
    ot_linear *lin;
    int n_lin;
    OT_TRY(ot_find_linears(g, &lin, &n_lin));
    ot_status st = tie_embeddings(s, lin, n_lin);
    for (int v = 0; st == OT_OK && v < g->n_values; v++) {
        ot_value *val = &g->values[v];
        if (v == s->tied_copy) continue;
        const char *module = linear_module(lin, n_lin, v);
        if (!weight_like(val, module)) continue;
        if (name_matches(val->name, &s->cfg->freeze) || (module && name_matches(module, &s->cfg->freeze))) continue;
        st = make_param(g, v, s->plan_only);
    }
    ot_linears_free(lin, n_lin);
    return st;
}

static ot_status lora(ot_session *s) {
    const ot_train_config *c = s->cfg;
    ot_lora_config lc = {0};
    lc.r = (int)c->lora_r;
    lc.alpha = (float)c->lora_alpha;
    lc.dropout = (float)c->lora_dropout;
    lc.rslora = c->lora_rslora;
    lc.init = c->lora_init && !strcmp(c->lora_init, "gaussian") ? OT_LORA_INIT_GAUSSIAN : OT_LORA_INIT_KAIMING;
    lc.targets = (const char *const *)c->lora_targets.v;
    lc.n_targets = c->lora_targets.n;
    lc.seed = (uint64_t)c->seed;
    OT_TRY(ot_lora_apply(s->g, &lc, &s->adapters, &s->n_adapters));
    if (!c->lora_init || !strcmp(c->lora_init, "kaiming") || !strcmp(c->lora_init, "gaussian")) return OT_OK;
    /* Start from an existing PEFT adapter: every adapter must find its A and B. */
    ot_peft *pf;
    OT_TRY(ot_peft_read(c->lora_init, &pf));
    ot_status st = OT_OK;
    for (int i = 0; st == OT_OK && i < s->n_adapters; i++) {
        const ot_lora_adapter *ad = &s->adapters[i];
        const ot_peft_adapter *hit = NULL;
        int n_hits = 0;
        size_t best = 0;
        for (int k = 0; k < pf->n; k++) { /* longest matching suffix wins; equal lengths are ambiguous */
            const char *m = pf->adapters[k].module;
            if (!ot_module_matches(ad->module, m) && !ot_module_matches(m, ad->module)) continue;
            size_t len = strlen(m);
            if (len > best) best = len, hit = &pf->adapters[k], n_hits = 1;
            else if (len == best) n_hits++;
        }
        if (!hit) {
            st = ot_errorf(OT_E_INVALID, "--lora-init '%s': no adapter for module '%s'", c->lora_init, ad->module);
        } else if (n_hits > 1) {
            st = ot_errorf(OT_E_INVALID, "--lora-init '%s': module '%s' matches %d adapters equally", c->lora_init,
                           ad->module, n_hits);
        } else {
            ot_tensor *a = s->g->values[ad->a].init, *b = s->g->values[ad->b].init;
            if (!ot_shape_equal(a->ndim, a->dims, hit->a->ndim, hit->a->dims) ||
                !ot_shape_equal(b->ndim, b->dims, hit->b->ndim, hit->b->dims)) {
                char s1[64], s2[64];
                st = ot_errorf(OT_E_SHAPE, "--lora-init '%s': adapter '%s' has A %s, the model needs %s (r=%d)", c->lora_init,
                               hit->module, ot_shape_str(s1, sizeof s1, hit->a->ndim, hit->a->dims),
                               ot_shape_str(s2, sizeof s2, a->ndim, a->dims), (int)c->lora_r);
            } else {
                memcpy(a->data, hit->a->data, ot_tensor_nbytes(a));
                memcpy(b->data, hit->b->data, ot_tensor_nbytes(b));
            }
        }
    }
    ot_peft_free(pf);
    return st;
}

static ot_status collect_params(ot_session *s) {
    ot_graph *g = s->g;
    int n = 0;
    for (int v = 0; v < g->n_values; v++) n += g->values[v].is_param;
    if (n == 0) return ot_errorf(OT_E_INVALID, "nothing to train: every weight is frozen");
    s->params = calloc((size_t)n, sizeof *s->params);
    if (!s->params) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (int v = 0; v < g->n_values; v++) {
        if (!g->values[v].is_param) continue;
        ot_param *p = &s->params[s->n_params++];
        p->value = v;
        p->name = g->values[v].name;
        p->data = g->values[v].init->data;
        p->numel = ot_tensor_numel(g->values[v].init);
    }
    return OT_OK;
}

static ot_status build_params(ot_session *s, const ot_train_config *cfg, int plan_only) {
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->plan_only = plan_only;
    s->tied_source = s->tied_copy = -1;
    s->accuracy = s->accuracy_output = -1;
    s->compute = OT_F32;
    OT_TRY(ot_model_load(cfg->model, &s->g));
    if (cfg->weights) OT_TRY(ot_weights_overlay(s->g, cfg->weights));
    OT_TRY(cfg->full ? unfreeze(s) : lora(s));
    return collect_params(s);
}

ot_status ot_session_build_params(ot_session *s, const ot_train_config *cfg) { return build_params(s, cfg, 0); }

/* ---- loss head ---- */

static ot_status add_input(ot_graph *g, const char *name, ot_dtype dt, int *v) {
    if (ot_graph_find(g, name) >= 0 && g->values[ot_graph_find(g, name)].is_input) {
        *v = ot_graph_find(g, name);
        return OT_OK;
    }
    if (ot_graph_find(g, name) >= 0)
        return ot_errorf(OT_E_INVALID, "the model already has a value named '%s'; onnxtune needs that name for its "
                         "loss input", name);
    OT_TRY(ot_graph_value(g, name, v));
    int *in = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *in);
    if (!in) return ot_errorf(OT_E_NOMEM, "out of memory");
    g->inputs = in;
    g->inputs[g->n_inputs++] = *v;
    g->values[*v].is_input = 1;
    g->values[*v].dtype = dt;
    g->values[*v].ndim = -1;
    return OT_OK;
}

static ot_status attach_loss(ot_session *s, ot_dtype label_dtype) {
    ot_graph *g = s->g;
    const ot_train_config *c = s->cfg;
    int out = g->outputs[0];
    if (c->loss_output) {
        out = -1;
        for (int i = 0; i < g->n_outputs; i++)
            if (!strcmp(g->values[g->outputs[i]].name, c->loss_output)) out = g->outputs[i];
        if (out < 0) return ot_errorf(OT_E_INVALID, "--loss-output '%s' is not an output of the model", c->loss_output);
    }
    int labels;
    OT_TRY(add_input(g, "labels", label_dtype, &labels));
    if (ot_graph_opset(g, "ai.onnxtune") == 0) OT_TRY(ot_graph_add_opset(g, "ai.onnxtune", 1));
    const char *op = !strcmp(c->loss, "causal-lm") ? "CausalLMLoss" : !strcmp(c->loss, "mse") ? "MSELoss" : "CrossEntropyLoss";
    OT_TRY(ot_graph_value(g, "ot.loss", &s->loss));
    int in[2] = {out, labels}, outs[3] = {s->loss, -1, -1};
    int n_out = 1;
    if (!strcmp(op, "CausalLMLoss")) {
        OT_TRY(ot_graph_value(g, "ot.loss/logsumexp", &outs[1]));
        n_out = 2;
    }
    if (strcmp(op, "MSELoss") != 0) { /* the cross-entropies also report the mean token accuracy */
        OT_TRY(ot_graph_value(g, "ot.loss/accuracy", &outs[2]));
        s->accuracy = outs[2];
        n_out = 3;
    }
    OT_TRY(ot_graph_add_node(g, op, "ai.onnxtune", "ot.loss_head", in, 2, outs, n_out, NULL));
    for (int i = 0; i < g->n_outputs; i++) g->values[g->outputs[i]].is_output = 0;
    g->outputs[0] = s->loss;
    g->n_outputs = 1;
    g->values[s->loss].is_output = 1;
    return ot_graph_toposort(g);
}

/* ---- feeding ---- */

static ot_status bind_feeds(ot_session *s, const ot_batch *b) {
    ot_graph *g = s->g;
    s->feeds = calloc((size_t)g->n_inputs + 1, sizeof *s->feeds);
    if (!s->feeds) return ot_errorf(OT_E_NOMEM, "out of memory");
    s->n_feeds = g->n_inputs;
    for (int i = 0; i < g->n_inputs; i++) {
        ot_feed *f = &s->feeds[i];
        const ot_value *v = &g->values[g->inputs[i]];
        f->value = g->inputs[i];
        if (!strcmp(v->name, "ot.dropout_seed")) {
            f->source = -1;
            f->t.dtype = OT_I64;
            f->t.ndim = 0;
            f->t.data = &s->dropout_seed;
            continue;
        }
        f->source = -2;
        for (int k = 0; k < b->n; k++)
            if (!strcmp(b->names[k], v->name)) f->source = k;
        const ot_tensor *ids = ot_batch_get(b, "input_ids");
        if (f->source < 0 && !strcmp(v->name, "token_type_ids") && ids) {
            /* single-segment data: every token is of type 0, as Hugging Face assumes */
            OT_TRY(ot_tensor_new(&f->conv, v->dtype, ids->ndim, ids->dims));
            f->t = *f->conv;
            f->t.owned = 0;
            continue;
        }
        if (f->source < 0) {
            char have[1024];
            size_t q = 0;
            have[0] = '\0';
            for (int k = 0; k < b->n && q + 1 < sizeof have; k++)
                q += (size_t)snprintf(have + q, sizeof have - q, "%s'%s'", k ? ", " : "", b->names[k]);
            return ot_errorf(OT_E_INVALID, "the model's input '%s' is not in the training data (it has %s)", v->name, have);
        }
        const ot_tensor *src = b->tensors[f->source];
        f->t = *src;
        f->t.dtype = v->dtype;
        f->t.owned = 0;
        if (src->dtype != v->dtype) OT_TRY(ot_tensor_new(&f->conv, v->dtype, src->ndim, src->dims));
    }
    return OT_OK;
}

static ot_status load_feeds(ot_session *s, const ot_batch *b, const ot_tensor **inputs) {
    for (int i = 0; i < s->n_feeds; i++) {
        ot_feed *f = &s->feeds[i];
        if (f->source >= 0) {
            if (f->source >= b->n) return ot_errorf(OT_E_INTERNAL, "batch layout changed");
            const ot_tensor *src = b->tensors[f->source];
            if (!ot_shape_equal(src->ndim, src->dims, f->t.ndim, f->t.dims)) {
                char s1[128], s2[128];
                return ot_errorf(OT_E_SHAPE, "training data '%s' has shape %s, the plan was made for %s",
                                 b->names[f->source], ot_shape_str(s1, sizeof s1, src->ndim, src->dims),
                                 ot_shape_str(s2, sizeof s2, f->t.ndim, f->t.dims));
            }
            if (f->conv) {
                ot_convert(f->conv->data, f->conv->dtype, src->data, src->dtype, (size_t)ot_tensor_numel(src));
                f->t.data = f->conv->data;
            } else {
                f->t.data = src->data;
            }
        }
        inputs[i] = &f->t;
    }
    return OT_OK;
}

/* ---- precision ---- */

ot_dtype ot_precision_dtype(const char *precision) {
    if (precision && !strcmp(precision, "auto")) return ot_cpu_has_bf16() ? OT_BF16 : OT_F32;
    if (!precision || !strcmp(precision, "fp32")) return OT_F32;
    if (!strcmp(precision, "bf16")) return OT_BF16;
    if (!strcmp(precision, "fp16")) return OT_F16;
    return OT_UNDEFINED;
}

/* bf16/fp16: every parameter gets an owned FP32 master (a copy of its f32 initializer, which
 * autocast then replaces by the 16-bit working copy); the model's weights and the parameters
 * are stored in 16 bits and the graph computes in them. */
static ot_status apply_precision(ot_session *s, const ot_tensor *const *inputs) {
    ot_graph *g = s->g;
    unsigned char *mask = calloc((size_t)g->n_values + 1, 1);
    ot_linear *lin = NULL;
    int n_lin = 0;
    ot_status st = mask ? ot_find_linears(g, &lin, &n_lin) : ot_errorf(OT_E_NOMEM, "out of memory");
    for (int v = 0; st == OT_OK && v < g->n_values; v++)
        if (g->values[v].is_param || weight_like(&g->values[v], linear_module(lin, n_lin, v))) mask[v] = OT_AUTOCAST_WEIGHT;
    for (int i = 0; st == OT_OK && i < s->n_feeds; i++)
        if (s->feeds[i].source == -3) mask[s->feeds[i].value] = OT_AUTOCAST_KEEP_F32; /* the loss-scale seed */
    ot_linears_free(lin, n_lin);
    for (int i = 0; st == OT_OK && i < s->n_params; i++) {
        ot_param *p = &s->params[i];
        if (s->plan_only) p->data = NULL; /* nothing will update it */
        else if (!(p->data = malloc((size_t)p->numel * sizeof(float)))) st = ot_errorf(OT_E_NOMEM, "out of memory");
        else memcpy(p->data, g->values[p->value].init->data, (size_t)p->numel * sizeof(float));
    }
    if (st == OT_OK)
        st = ot_autocast(g, inputs, s->compute, mask, s->plan_only ? OT_AUTOCAST_SHAPES_ONLY : 0, &s->autocast);
    free(mask);
    return st;
}

void ot_session_sync_params(ot_session *s) {
    if (s->compute == OT_F32) return;
    for (int i = 0; i < s->n_params; i++) {
        const ot_param *p = &s->params[i];
        ot_f32_to_lowp_n(s->g->values[p->value].init->data, s->compute, p->data, (size_t)p->numel);
    }
}

/* fp16: the loss-gradient seed is a graph input fed with the loss scale on each step. */
static ot_status bind_seed_feed(ot_session *s, int seed) {
    ot_feed *f = &s->feeds[s->n_feeds++]; /* feeds has room for one more (bind_feeds) */
    f->value = seed;
    f->source = -3;
    f->t.dtype = OT_F32;
    f->t.ndim = 0;
    f->t.data = &s->loss_scale;
    return OT_OK;
}

static ot_status build(ot_session *s, const ot_train_config *cfg, const ot_batch *example, int plan_only) {
    OT_TRY(build_params(s, cfg, plan_only));
    s->loss_scale = 1.0f;
    if ((s->compute = ot_precision_dtype(cfg->precision)) == OT_UNDEFINED)
        return ot_errorf(OT_E_INVALID, "unknown precision '%s' (fp32, bf16 or fp16)", cfg->precision);
    const ot_tensor *labels = ot_batch_get(example, "labels");
    if (!labels) return ot_errorf(OT_E_INVALID, "the training data has no labels");
    OT_TRY(attach_loss(s, labels->dtype == OT_I64 || labels->dtype == OT_I32 ? OT_I64 : OT_F32));
    OT_TRY(bind_feeds(s, example));
    ot_graph *g = s->g;
    const ot_tensor **inputs = calloc((size_t)g->n_inputs + 1, sizeof *inputs);
    ot_tensor *meta = NULL;
    int *wrt = NULL, *grads = NULL;
    ot_status st = inputs ? load_feeds(s, example, inputs) : ot_errorf(OT_E_NOMEM, "out of memory");
    /* Forward plan for every value's dtype and shape, which the gradient builders use. */
    ot_plan *fwd = NULL;
    if (st == OT_OK) st = ot_plan_create_meta(g, inputs, &fwd);
    if (st == OT_OK) {
        meta = calloc((size_t)g->n_values, sizeof *meta);
        wrt = malloc((size_t)s->n_params * sizeof *wrt);
        grads = malloc((size_t)s->n_params * sizeof *grads);
        if (!meta || !wrt || !grads) st = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    if (st == OT_OK) ot_plan_value_meta(fwd, meta);
    ot_plan_free(fwd); /* before autodiff grows the graph it was made for */
    if (st == OT_OK) {
        for (int i = 0; i < s->n_params; i++) wrt[i] = s->params[i].value;
        ot_autodiff_opts ao = {s->compute == OT_F16};
        int n_in = g->n_inputs, n_forward = g->n_nodes;
        st = ot_autodiff(g, meta, s->loss, wrt, s->n_params, &ao, grads);
        /* before autocast, whose Casts would blur the forward/backward boundary */
        if (st == OT_OK && cfg->checkpoint_activations) st = ot_remat_blocks(g, n_forward, &s->remat);
        if (st == OT_OK && g->n_inputs > n_in) { /* the seed input autodiff added */
            st = bind_seed_feed(s, g->inputs[n_in]);
            inputs[n_in] = &s->feeds[n_in].t;
        }
    }
    for (int i = 0; st == OT_OK && i < s->n_params; i++) {
        if (grads[i] < 0) {
            st = ot_errorf(OT_E_INVALID, "trainable weight '%s' does not influence the loss", s->params[i].name);
            break;
        }
        for (int o = 0; o < g->n_outputs; o++)
            if (g->outputs[o] == grads[i]) s->params[i].grad_output = o;
    }
    if (st == OT_OK && s->accuracy >= 0) { /* the accuracy: the last output, after the gradients */
        int *o = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *o);
        if (!o) {
            st = ot_errorf(OT_E_NOMEM, "out of memory");
        } else {
            g->outputs = o;
            s->accuracy_output = g->n_outputs;
            g->outputs[g->n_outputs++] = s->accuracy;
            g->values[s->accuracy].is_output = 1;
        }
    }
    if (st == OT_OK && s->compute != OT_F32) st = apply_precision(s, inputs);
    if (st == OT_OK) st = plan_only ? ot_plan_create_meta(g, inputs, &s->plan) : ot_plan_create(g, inputs, &s->plan);
    if (st == OT_OK && !(s->outs = calloc((size_t)g->n_outputs, sizeof *s->outs)))
        st = ot_errorf(OT_E_NOMEM, "out of memory");
    free(inputs);
    free(meta);
    free(wrt);
    free(grads);
    return st;
}

ot_status ot_session_build(ot_session *s, const ot_train_config *cfg, const ot_batch *example) {
    return build(s, cfg, example, 0);
}

ot_status ot_session_plan_only(ot_session *s, const ot_train_config *cfg, const ot_batch *example) {
    return build(s, cfg, example, 1);
}

ot_status ot_session_step(ot_session *s, const ot_batch *b, int64_t dropout_seed, double *loss) {
    const ot_tensor *inputs[256];
    if (s->n_feeds > 256) return ot_errorf(OT_E_UNSUPPORTED, "more than 256 model inputs");
    s->dropout_seed = dropout_seed;
    OT_TRY(load_feeds(s, b, inputs));
    OT_TRY(ot_plan_run(s->plan, inputs, s->outs));
    *loss = ot_tensor_get_f64(&s->outs[0], 0);
    return OT_OK;
}

int ot_session_accuracy(const ot_session *s, double *acc) {
    if (s->accuracy_output < 0) return 0;
    *acc = ot_tensor_get_f64(&s->outs[s->accuracy_output], 0);
    return 1;
}

const ot_tensor *ot_session_grad_tensor(const ot_session *s, int i) { return &s->outs[s->params[i].grad_output]; }

const float *ot_session_grad(const ot_session *s, int i) {
    const ot_tensor *t = ot_session_grad_tensor(s, i);
    return t->dtype == OT_F32 ? t->data : NULL;
}

void ot_session_free(ot_session *s) {
    for (int i = 0; s->feeds && i < s->n_feeds; i++) ot_tensor_free(s->feeds[i].conv);
    free(s->feeds);
    free(s->outs);
    ot_plan_free(s->plan);
    for (int i = 0; s->params && i < s->n_params; i++) { /* the FP32 masters apply_precision made */
        const ot_tensor *w = s->g ? s->g->values[s->params[i].value].init : NULL;
        if (!w || s->params[i].data != (float *)w->data) free(s->params[i].data);
    }
    free(s->params);
    ot_lora_adapters_free(s->adapters, s->n_adapters);
    ot_graph_free(s->g);
    memset(s, 0, sizeof *s);
}
