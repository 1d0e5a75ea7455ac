/* adamw.c — see adamw.h. Element-wise over each parameter, OpenMP across elements; the
 * arithmetic per element is fixed, so results do not depend on the thread count. */
#include "trainer/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ot_status ot_adamw_init(ot_adamw *o, const ot_adamw_hparams *h, const int64_t *sizes, int n) {
    memset(o, 0, sizeof *o);
    o->h = *h;
    o->n = n;
    o->offset = malloc((size_t)(n + 1) * sizeof *o->offset);
    if (!o->offset) return ot_errorf(OT_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        o->offset[i] = o->total;
        o->total += sizes[i];
    }
    o->offset[n] = o->total;
    o->m = calloc((size_t)(o->total ? o->total : 1), sizeof(float));
    o->v = calloc((size_t)(o->total ? o->total : 1), sizeof(float));
    if (!o->m || !o->v) {
        ot_adamw_free(o);
        return ot_errorf(OT_E_NOMEM, "out of memory for AdamW state (%lld parameters)", (long long)o->total);
    }
    return OT_OK;
}

void ot_adamw_free(ot_adamw *o) {
    free(o->offset);
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

static inline float grad_at(const ot_grad_ref *g, int64_t k) {
    switch (g->dtype) {
    case OT_BF16: return ot_bf16_to_f32(((const uint16_t *)g->data)[k]);
    case OT_F16: return ot_f16_to_f32(((const uint16_t *)g->data)[k]);
    default: return ((const float *)g->data)[k];
    }
}

void ot_adamw_step(ot_adamw *o, float *const *params, const float *const *grads, float lr) {
    ot_grad_ref *refs = malloc((size_t)(o->n ? o->n : 1) * sizeof *refs);
    if (!refs) abort(); /* a few bytes per parameter tensor */
    for (int i = 0; i < o->n; i++) refs[i].data = grads[i], refs[i].dtype = OT_F32;
    ot_adamw_step_ref(o, params, refs, 1.0f, lr);
    free(refs);
}

void ot_adamw_step_ref(ot_adamw *o, float *const *params, const ot_grad_ref *grads, float mul, float lr) {
    o->step++;
    const float b1 = o->h.beta1, b2 = o->h.beta2, eps = o->h.eps;
    const float decay = 1.0f - lr * o->h.weight_decay;
    /* Bias corrections in double, then rounded, as PyTorch computes them in Python floats. */
    const double bc1 = 1.0 - pow((double)b1, (double)o->step), bc2 = 1.0 - pow((double)b2, (double)o->step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int i = 0; i < o->n; i++) {
        float *p = params[i], *m = o->m + o->offset[i], *v = o->v + o->offset[i];
        const ot_grad_ref *gr = &grads[i];
        int64_t n = o->offset[i + 1] - o->offset[i];
#pragma omp parallel for if (n > 32768) schedule(static)
        for (int64_t k = 0; k < n; k++) {
            float g = mul == 1.0f ? grad_at(gr, k) : grad_at(gr, k) * mul;
            p[k] *= decay;
            m[k] = m[k] * b1 + (1.0f - b1) * g;
            v[k] = v[k] * b2 + (1.0f - b2) * g * g;
            float denom = sqrtf(v[k]) / bc2_sqrt + eps;
            p[k] -= step_size * (m[k] / denom);
        }
    }
}

double ot_grad_global_norm(const float *const *grads, const int64_t *sizes, int n) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        const float *g = grads[i];
#pragma omp parallel for reduction(+ : s) if (sizes[i] > 32768) schedule(static)
        for (int64_t k = 0; k < sizes[i]; k++) s += (double)g[k] * g[k];
        total += s;
    }
    return sqrt(total);
}

double ot_grad_global_norm_ref(const ot_grad_ref *grads, const int64_t *sizes, int n, float mul) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        const ot_grad_ref *g = &grads[i];
#pragma omp parallel for reduction(+ : s) if (sizes[i] > 32768) schedule(static)
        for (int64_t k = 0; k < sizes[i]; k++) {
            float x = grad_at(g, k) * mul;
            s += (double)x * x;
        }
        total += s;
    }
    return sqrt(total);
}

void ot_grads_scale(float *const *grads, const int64_t *sizes, int n, float s) {
    for (int i = 0; i < n; i++) {
        float *g = grads[i];
#pragma omp parallel for if (sizes[i] > 32768) schedule(static)
        for (int64_t k = 0; k < sizes[i]; k++) g[k] *= s;
    }
}
