/* train_dropout.c — TrainingDropout and its gradient (domain ai.onnxtune), used by LoRA.
 *
 *   y  = x ⊙ m / (1 − p)        TrainingDropout(x, seed; ratio=p, stream)
 *   dx = dy ⊙ m / (1 − p)       TrainingDropoutGrad(dy, seed; ratio=p, stream)
 * The mask m[i] = [u(seed, stream, i) >= p] comes from a counter-based hash of (seed,
 * stream, element index), so the backward recomputes it instead of storing it, every
 * element is independent of thread scheduling, and a run resumed at step k draws exactly
 * the masks of an uninterrupted run (the trainer feeds seed = f(run seed, step, micro-step)).
 * Outputs are written with `=`. f32 and f64. */
#include <math.h>

#include "runtime/ops/ophelp.h"

typedef struct {
    float ratio;
    int64_t stream;
} dropout_attr;

static ot_status dropout_parse(const ot_node *n, int opset, void *attr) {
    (void)opset;
    dropout_attr *a = attr;
    OT_TRY(ot_attr_float(n, "ratio", 0.5f, &a->ratio));
    OT_TRY(ot_attr_int(n, "stream", 0, &a->stream));
    if (!(a->ratio >= 0 && a->ratio < 1))
        return ot_errorf(OT_E_INVALID, "%s node '%s': ratio must be in [0, 1), got %g", n->op_type, n->name, a->ratio);
    return OT_OK;
}

static ot_status dropout_infer(ot_op_ctx *c) {
    OT_TRY(ot_check_input(c, 0, OT_UNDEFINED));
    OT_TRY(ot_check_input(c, 1, OT_I64));
    const ot_tensor *x = c->in[0];
    if (x->dtype != OT_F32 && x->dtype != OT_F64 && !ot_dtype_is_lowp(x->dtype))
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s (f32, f64, bf16, f16 supported)", ot_op_label(c),
                         ot_dtype_name(x->dtype));
    if (ot_tensor_numel(c->in[1]) != 1) return ot_errorf(OT_E_SHAPE, "%s: seed must be a scalar", ot_op_label(c));
    return ot_set_out(c, 0, x->dtype, x->ndim, x->dims);
}

static inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static ot_status dropout_cpu(ot_op_ctx *c) {
    const dropout_attr *a = c->attr;
    const ot_tensor *x = c->in[0];
    ot_tensor *y = c->out[0];
    uint64_t key = mix((uint64_t)ot_tensor_get_i64(c->in[1], 0) * 0x9e3779b97f4a7c15ull + (uint64_t)a->stream);
    /* keep iff u >= p, compared in 53-bit fixed point */
    uint64_t threshold = (uint64_t)((double)a->ratio * 9007199254740992.0);
    double keep_scale = 1.0 / (1.0 - a->ratio);
    int64_t n = ot_tensor_numel(x);
    if (ot_dtype_is_lowp(x->dtype)) { /* x * s in f32 (the f32 kernel's product), rounded once */
        const uint16_t *xs = x->data;
        uint16_t *ys = y->data;
        const float s = (float)keep_scale;
        const int bf = x->dtype == OT_BF16;
#pragma omp parallel for if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if ((mix(key + (uint64_t)i) >> 11) < threshold) {
                ys[i] = 0; /* +0 */
                continue;
            }
            const float v = (bf ? ot_bf16_to_f32(xs[i]) : ot_f16_to_f32(xs[i])) * s;
            ys[i] = bf ? ot_f32_to_bf16(v) : ot_f32_to_f16(v);
        }
    } else if (x->dtype == OT_F32) {
        const float *xs = x->data;
        float *ys = y->data, s = (float)keep_scale;
#pragma omp parallel for if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; i++) ys[i] = (mix(key + (uint64_t)i) >> 11) >= threshold ? xs[i] * s : 0.0f;
    } else {
        const double *xs = x->data;
        double *ys = y->data;
#pragma omp parallel for if (n > 65536) schedule(static)
        for (int64_t i = 0; i < n; i++) ys[i] = (mix(key + (uint64_t)i) >> 11) >= threshold ? xs[i] * keep_scale : 0.0;
    }
    return OT_OK;
}

const ot_op_def ot_ops_train[] = {
    /* The gradient is the same op applied to dy: the mask is a function of (seed, stream, i). */
    {.domain = "ai.onnxtune", .op_type = "TrainingDropout", .since = 1, .until = 1, .min_in = 2, .max_in = 2,
     .attr_size = sizeof(dropout_attr), .parse = dropout_parse, .infer = dropout_infer, .cpu = dropout_cpu,
     .flags = OT_OP_NO_FOLD},
};
const int ot_ops_train_count = (int)(sizeof ot_ops_train / sizeof ot_ops_train[0]);
