/* session.h — a training session: the model turned into a trainable graph (LoRA adapters
 * or unfrozen weights as parameters, a loss head, the backward graph) and its plan.
 *
 * Invariants: every parameter is an initializer marked is_param whose data the session owns
 * (copied out of the read-only model). Its FP32 master (`data`) is what the optimizer updates;
 * in fp32 it is the initializer itself, in bf16/fp16 the initializer is a 16-bit working copy
 * that ot_session_sync_params refreshes from the master (round to nearest even). The plan's
 * outputs are [loss, d loss / d param_0, ..., accuracy?] in parameter order, the mean token
 * accuracy last and only for the cross-entropy losses (causal-lm, cross-entropy). Gradients
 * come out in the compute dtype (16-bit in bf16/fp16). In fp16 the loss gradient is seeded
 * with `loss_scale` instead of 1 (dynamic loss scaling, see trainer/loss_scaler.h). */
#ifndef OT_SESSION_H
#define OT_SESSION_H

#include "onnxtune/runtime.h"
#include "runtime/autocast.h"
#include "trainer/remat.h"
#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/lora.h"

typedef struct ot_param {
    int value;        /* graph value (is_param) */
    const char *name; /* the value's name (owned by the graph) */
    float *data;      /* FP32 master: = g->values[value].init->data in fp32, owned in bf16/fp16 */
    int64_t numel;
    int grad_output;  /* index into the plan's outputs */
} ot_param;

/* A graph input and where its data comes from on each step. */
typedef struct ot_feed {
    int value;
    int source;       /* index into the batch, or -1 for the dropout seed, -2 for zeros
                         (token_type_ids absent from single-segment data) */
    ot_tensor t;      /* planned dtype/shape; data set per step */
    ot_tensor *conv;  /* conversion buffer when the batch dtype differs */
} ot_feed;

typedef struct ot_session {
    const ot_train_config *cfg;
    ot_graph *g;
    ot_lora_adapter *adapters;
    int n_adapters;
    ot_param *params;
    int n_params;
    int loss;          /* loss value */
    int accuracy;      /* mean token accuracy value, -1 when the loss has none (mse) */
    int accuracy_output; /* its index in the plan's outputs, -1 when none */
    ot_plan *plan;
    ot_tensor *outs;   /* the plan's outputs after a step */
    ot_feed *feeds;    /* one per graph input, in g->inputs order */
    int n_feeds;
    int64_t dropout_seed;
    /* full fine-tuning: a weight stored twice by the exporter (embedding and its transpose
     * for the tied output head) trains as one; the transposed copy is rebuilt at export. */
    int tied_source, tied_copy; /* value indices, -1 when none */
    ot_dtype compute;  /* OT_F32, OT_BF16 or OT_F16 (from cfg->precision) */
    float loss_scale;  /* fp16: the loss-gradient seed fed on each step (1 otherwise) */
    ot_autocast_stats autocast;
    int plan_only;     /* ot_session_plan_only */
    ot_remat_stats remat; /* --checkpoint-activations */
} ot_session;

/* Loads the model, makes parameters (LoRA or full), attaches the loss head, differentiates,
 * and plans for the shapes of `example` (a batch as the data gives it). */
ot_status ot_session_build(ot_session *s, const ot_train_config *cfg, const ot_batch *example);
/* Like build, for measuring only (`onnxtune estimate`): weights are neither copied nor
 * converted (their 16-bit copies are zero-filled, untouched pages), there are no FP32 masters,
 * and the plan has no arena (its stats and value metadata are those of the real plan). Such a
 * session cannot step. */
ot_status ot_session_plan_only(ot_session *s, const ot_train_config *cfg, const ot_batch *example);
/* Like build, without loss, autodiff or plan: the trainable graph only (for export). */
ot_status ot_session_build_params(ot_session *s, const ot_train_config *cfg);
void ot_session_free(ot_session *s);

/* Runs forward + backward on one batch. *loss receives the loss; gradients are read with
 * ot_session_grad. */
ot_status ot_session_step(ot_session *s, const ot_batch *b, int64_t dropout_seed, double *loss);
/* The mean token accuracy of the last step into *acc: returns 1, or 0 (and leaves *acc)
 * when the loss head has none (mse). */
int ot_session_accuracy(const ot_session *s, double *acc);
/* The gradient of parameter i from the last step, in the compute dtype (valid until the
 * next step). ot_session_grad is the f32 shortcut for fp32 sessions. */
const ot_tensor *ot_session_grad_tensor(const ot_session *s, int i);
const float *ot_session_grad(const ot_session *s, int i);
/* After the optimizer updated the FP32 masters: rounds them into the 16-bit working copies
 * (nothing to do in fp32). */
void ot_session_sync_params(ot_session *s);
/* "fp32" / "bf16" / "fp16" -> OT_F32 / OT_BF16 / OT_F16; OT_UNDEFINED otherwise. */
ot_dtype ot_precision_dtype(const char *precision);

#endif
