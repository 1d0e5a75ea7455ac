/* estimate_plan.c — the model side of the estimator: parameter counts and activation bytes
 * taken from real training sessions (trainer/session.h), built for one micro-batch exactly as
 * `onnxtune train` builds them, then planned but never run.
 *
 * The micro-batch is the first one of --data when the caller asks for it, else synthetic:
 * every graph input shaped by its declared dims with symbolic ones bound to micro-batch (the
 * first) and seq-len (the others), zeros (ones for attention masks); labels shaped from the
 * loss output that a forward plan infers (its dims without the class axis for the
 * cross-entropies, all of them for mse). Uses only s.params, s.n_params, s.g and s.plan of
 * a session, and the plan's public stats and value metadata. */
#include <stdlib.h>
#include <string.h>

#include "onnxtune/importer.h"
#include "trainer/estimate.h"
#include "trainer/session.h"

static ot_status batch_add(ot_batch *b, const char *name, ot_dtype dt, int ndim, const int64_t *dims, int ones) {
    char **names = realloc(b->names, (size_t)(b->n + 1) * sizeof *names);
    if (names) b->names = names;
    ot_tensor **ts = names ? realloc(b->tensors, (size_t)(b->n + 1) * sizeof *ts) : NULL;
    if (!ts) return ot_errorf(OT_E_NOMEM, "out of memory");
    b->tensors = ts;
    ot_tensor *t;
    OT_TRY(ot_tensor_new(&t, dt, ndim, dims)); /* zeroed */
    if (!(b->names[b->n] = strdup(name))) {
        ot_tensor_free(t);
        return ot_errorf(OT_E_NOMEM, "out of memory");
    }
    b->tensors[b->n++] = t;
    if (ones) { /* an attention mask: every position attended */
        int64_t n = ot_tensor_numel(t);
        const float one = 1.0f;
        for (int64_t i = 0; i < n; i++)
            ot_convert((char *)t->data + (size_t)i * ot_dtype_size(dt), dt, &one, OT_F32, 1);
    }
    return OT_OK;
}

/* Graph inputs of the model, shaped [micro, seq] where symbolic. */
static ot_status synthetic_inputs(const ot_graph *g, int64_t mb, int64_t seq, ot_batch *b) {
    for (int i = 0; i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i]];
        if (v->ndim < 0 || v->dtype == OT_UNDEFINED || !ot_dtype_size(v->dtype))
            return ot_errorf(OT_E_UNSUPPORTED, "model input '%s' has no declared %s; give --data so the estimate can "
                             "take the shapes from a real batch", v->name, v->ndim < 0 ? "rank" : "dtype");
        int64_t dims[OT_MAX_DIMS];
        for (int d = 0; d < v->ndim; d++) dims[d] = v->dims[d] >= 0 ? v->dims[d] : d == 0 ? mb : seq;
        OT_TRY(batch_add(b, v->name, v->dtype, v->ndim, dims, strstr(v->name, "attention_mask") != NULL));
    }
    b->tokens = mb * seq;
    return OT_OK;
}

/* Labels for the loss: planned from the loss output's inferred shape. */
static ot_status synthetic_labels(const ot_train_config *cfg, ot_graph *g, ot_batch *b) {
    int out = g->n_outputs ? g->outputs[0] : -1;
    if (cfg->loss_output) {
        out = ot_graph_find(g, cfg->loss_output);
        if (out < 0 || !g->values[out].is_output)
            return ot_errorf(OT_E_INVALID, "--loss-output '%s' is not an output of the model", cfg->loss_output);
    }
    if (out < 0) return ot_errorf(OT_E_INVALID, "the model has no outputs");
    const ot_tensor **in = calloc((size_t)b->n + 1, sizeof *in);
    ot_tensor *meta = calloc((size_t)g->n_values, sizeof *meta);
    ot_plan *p = NULL;
    ot_status st = in && meta ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    for (int i = 0; st == OT_OK && i < b->n; i++) in[i] = b->tensors[i];
    if (st == OT_OK) st = ot_plan_create(g, in, &p);
    if (st == OT_OK) ot_plan_value_meta(p, meta);
    ot_tensor m = st == OT_OK ? meta[out] : (ot_tensor){0};
    ot_plan_free(p);
    free(in);
    free(meta);
    OT_TRY(st);
    int mse = !strcmp(cfg->loss, "mse");
    if (m.ndim < (mse ? 0 : 1))
        return ot_errorf(OT_E_SHAPE, "loss output '%s' has rank %d; %s needs class scores on its last axis",
                         g->values[out].name, m.ndim, cfg->loss);
    return batch_add(b, "labels", mse ? OT_F32 : OT_I64, mse ? m.ndim : m.ndim - 1, m.dims, 0);
}

static ot_status synthetic_batch(const ot_train_config *cfg, ot_batch *b) {
    ot_graph *g;
    OT_TRY(ot_model_load(cfg->model, &g));
    ot_status st = synthetic_inputs(g, cfg->micro_batch_size, cfg->seq_len, b);
    if (st == OT_OK) st = synthetic_labels(cfg, g, b);
    ot_graph_free(g);
    return st;
}

static ot_status first_batch(const ot_train_config *cfg, ot_batch *b) {
    ot_data_opts dopts = {(int)cfg->seq_len, cfg->pack, cfg->shuffle, (uint64_t)cfg->seed, 0};
    ot_dataset *ds;
    OT_TRY(ot_dataset_open(cfg->data, &dopts, &ds));
    ot_status st = ot_dataset_batch(ds, 0, (int)cfg->micro_batch_size, b);
    ot_dataset_close(ds);
    return st;
}

/* Builds a session (checkpointing on or off), reads activations = arena − parameter
 * gradients, and with `count` the trainable and frozen parameter counts. */
static ot_status measure(const ot_train_config *cfg, int ckpt, const ot_batch *b, int count, ot_estimate *e) {
    ot_train_config c = *cfg; /* shallow: only the flag differs; strings stay cfg's */
    c.checkpoint_activations = ckpt;
    ot_session s;
    ot_status st = ot_session_plan_only(&s, &c, b);
    ot_tensor *meta = NULL;
    unsigned char *read = NULL;
    const ot_graph *g = s.g;
    if (st == OT_OK) {
        meta = calloc((size_t)g->n_values, sizeof *meta);
        read = calloc((size_t)g->n_values, 1);
        if (!meta || !read) st = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    if (st == OT_OK) {
        ot_plan_stats ps;
        ot_plan_get_stats(s.plan, &ps);
        ot_plan_value_meta(s.plan, meta);
        int64_t grads = 0;
        for (int i = 0; i < s.n_params; i++) {
            const ot_tensor *m = &meta[g->outputs[s.params[i].grad_output]];
            grads += ot_tensor_numel(m) * (int64_t)ot_dtype_size(m->dtype);
        }
        int64_t act = (int64_t)ps.arena_bytes - grads;
        e->activations[ckpt] = act > 0 ? act : 0;
    }
    if (st == OT_OK && count) {
        e->trainable = e->frozen = e->const_bytes = 0;
        for (int i = 0; i < s.n_params; i++) e->trainable += s.params[i].numel;
        for (int n = 0; n < g->n_nodes; n++)
            for (int k = 0; k < g->nodes[n].n_in; k++)
                if (g->nodes[n].in[k] >= 0) read[g->nodes[n].in[k]] = 1;
        for (int v = 0; v < g->n_values; v++) {
            const ot_value *val = &g->values[v];
            if (!val->init || val->is_param) continue;
            if (read[v] && ot_dtype_is_float(val->init->dtype)) e->frozen += ot_tensor_numel(val->init);
            else e->const_bytes += (int64_t)ot_tensor_nbytes(val->init);
        }
    }
    free(meta);
    free(read);
    ot_session_free(&s);
    return st;
}

ot_status ot_estimate_run(const ot_train_config *cfg, const ot_estimate_opts *o, int use_data, ot_estimate *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->precision, sizeof e->precision, "%s", cfg->precision ? cfg->precision : "");
    e->full = cfg->full;
    e->lora_r = cfg->full ? 0 : cfg->lora_r;
    e->zero = o->zero;
    e->ranks = o->ranks;
    e->micro_batch = cfg->micro_batch_size;
    e->seq_len = cfg->seq_len;
    e->grad_accum = cfg->grad_accum;
    e->checkpoint = cfg->checkpoint_activations != 0;
    e->activations[0] = e->activations[1] = -1;
    if (o->params > 0) { /* counts alone */
        if (!cfg->full && o->trainable_params <= 0)
            return ot_errorf(OT_E_INVALID, "LoRA with --params needs --trainable-params T (the adapter's parameter "
                             "count), or --model M to count it from the graph");
        e->trainable = cfg->full ? o->params : o->trainable_params;
        e->frozen = cfg->full ? 0 : o->params;
        return ot_estimate_compute(e);
    }
    if (!cfg->model) return ot_errorf(OT_E_INVALID, "missing --model M (or --params N for a parameter count)");
    ot_set_threads((int)cfg->threads);
    ot_batch b = {0};
    ot_status st = use_data ? first_batch(cfg, &b) : synthetic_batch(cfg, &b);
    if (st == OT_OK) st = measure(cfg, 0, &b, 1, e);
    if (st == OT_OK) {
        st = measure(cfg, 1, &b, 0, e);
        if (st != OT_OK && !cfg->checkpoint_activations) { /* not asked for: say why, estimate the rest */
            snprintf(e->ckpt_error, sizeof e->ckpt_error, "%s", ot_last_error());
            e->activations[1] = -1;
            st = OT_OK;
        }
    }
    ot_batch_free(&b);
    OT_TRY(st);
    return ot_estimate_compute(e);
}
