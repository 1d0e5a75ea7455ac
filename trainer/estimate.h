/* estimate.h — the memory estimator behind `onnxtune estimate`: bytes per rank of a training
 * run before it starts, by category.
 *
 * Model states follow DESIGN.md "Precision" (mixed-precision AdamW):
 *   weights      every weight's working copy: 2 B/param in bf16/fp16, 4 B in fp32 (frozen base
 *                weights under LoRA too);
 *   gradients    of the trainable params: 2 B bf16/fp16, 4 B fp32;
 *   master       fp32 copy of the trainable params: 4 B in bf16/fp16, 0 in fp32 (the weight is
 *                its own master);
 *   optimizer    AdamW m and v in fp32: 8 B per trainable param;
 * = 16 B per trainable param in every precision. ZeRO over R ranks shards, per rank: stage 1
 * the optimizer state and masters, stage 2 also the gradients, stage 3 also the weights (a
 * shard of n elements is ceil(n / R) elements). Mixed precision with Adam: 4+12/R, 2+14/R and
 * 16/R bytes per param.
 * Beside the model states:
 *   grad_accum_buffer  the trainer's fp32 gradient accumulator, 4 B per trainable param when
 *                      --grad-accum > 1 (with one micro-batch per step trainer/train.c reads
 *                      the gradients in place); sharded like the gradients;
 *   activations        the planned training graph's arena for one micro-batch minus the
 *                      parameter gradients it also holds (they are plan outputs): built from a
 *                      real session, once without and once with --checkpoint-activations.
 *                      Unknown (-1) with --params alone, and the checkpointed figure also
 *                      when checkpointing refuses the model and the config does not ask for it
 *                      (ckpt_error says why; when it asks, the estimate fails as train would).
 *   total              model states + grad_accum_buffer + activations (the --checkpoint-
 *                      activations choice of the config), or without activations when unknown.
 *
 * Parameter counts with a model come from a built session: trainable = sum of s.params numel;
 * frozen = every other float initializer of the training graph that some node reads (the
 * base weights, LoRA's scalars, the tables a model carries such as rotary cos/sin). The
 * weights category also holds the graph's other initializers in the dtype the session
 * stores them (`const_bytes`: integer shapes and indices, boolean masks, and weights no node
 * reads, such as the transposed copy of a tied embedding under --full, kept for export):
 * no parameters, never sharded. With
 * --params N alone: --full trains all N; LoRA needs --trainable-params T (the adapter count,
 * on top of the N frozen base weights) since the adapter size depends on the graph. */
#ifndef OT_ESTIMATE_H
#define OT_ESTIMATE_H

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "trainer/config.h"

/* One column of the table: bytes per category. activations is -1 when unknown. */
typedef struct ot_mem {
    int64_t weights, gradients, master, optimizer;
    int64_t model_states; /* weights + gradients + master + optimizer */
    int64_t grad_accum_buffer, activations, total;
} ot_mem;

/* What estimate adds to the training options. */
typedef struct ot_estimate_opts {
    int64_t params;           /* --params N: weights of a model not given (0: use cfg->model) */
    int64_t trainable_params; /* --trainable-params T: LoRA with --params (0: unset) */
    int zero;                 /* ZeRO stage 0..3 */
    int ranks;                /* data-parallel ranks >= 1 */
} ot_estimate_opts;

typedef struct ot_estimate {
    /* inputs of the arithmetic */
    char precision[8];          /* fp32 | bf16 | fp16 */
    int full;                   /* 1: full fine-tuning, 0: LoRA */
    int64_t lora_r;             /* LoRA rank, for the header line (0: not shown) */
    int zero, ranks;
    int64_t trainable, frozen;  /* parameter counts */
    int64_t const_bytes;        /* other initializers, bytes as stored (0 without a model) */
    int64_t grad_accum;         /* micro-batches per step: > 1 adds the fp32 accumulator */
    int64_t micro_batch, seq_len;
    int checkpoint;             /* the total uses activations[checkpoint] */
    int64_t activations[2];     /* [0] without, [1] with activation checkpointing; -1 unknown */
    char ckpt_error[512];       /* why [1] is unknown when checkpointing the model failed ("" else) */
    /* results of ot_estimate_compute */
    ot_mem per_rank, unsharded;
    int64_t model_states_by_zero[4]; /* per rank, ZeRO stage 0..3 */
} ot_estimate;

/* Fills per_rank, unsharded and model_states_by_zero from the inputs. Errors name the bad
 * input (precision, ZeRO stage, ranks, negative counts). */
ot_status ot_estimate_compute(ot_estimate *e);

/* The whole estimate for a finalized config: counts the parameters and plans the training
 * graph of cfg->model (twice: without and with activation checkpointing) for a synthetic
 * micro-batch — or for the first micro-batch of cfg->data when `use_data` — or takes the
 * counts of `o->params` alone. Then ot_estimate_compute. */
ot_status ot_estimate_run(const ot_train_config *cfg, const ot_estimate_opts *o, int use_data, ot_estimate *e);

/* An aligned table (bytes and GB = 1e9 bytes with 2 decimals) with a header naming the
 * configuration; `what` names the model or the parameter count. */
void ot_estimate_print(FILE *f, const ot_estimate *e, const char *what);
/* One JSON object: bytes as integers (null for unknown activations); caller frees. */
cJSON *ot_estimate_to_json(const ot_estimate *e, const char *what);

#endif
