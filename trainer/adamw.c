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

void ot_adamw_step(ot_adamw *o, float *const *params, const float *const *grads, float lr) {
    o->step++;
    const float b1 = o->h.beta1, b2 = o->h.beta2, eps = o->h.eps;
    const float decay = 1.0f - lr * o->h.weight_decay;
    /* Bias corrections in double, then rounded, as PyTorch computes them in Python floats. */
    const double bc1 = 1.0 - pow((double)b1, (double)o->step), bc2 = 1.0 - pow((double)b2, (double)o->step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int i = 0; i < o->n; i++) {
        float *p = params[i], *m = o->m + o->offset[i], *v = o->v + o->offset[i];
        const float *g = grads[i];
        int64_t n = o->offset[i + 1] - o->offset[i];
#pragma omp parallel for if (n > 32768) schedule(static)
        for (int64_t k = 0; k < n; k++) {
            p[k] *= decay;
            m[k] = m[k] * b1 + (1.0f - b1) * g[k];
            v[k] = v[k] * b2 + (1.0f - b2) * g[k] * g[k];
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

void ot_grads_scale(float *const *grads, const int64_t *sizes, int n, float s) {
    for (int i = 0; i < n; i++) {
        float *g = grads[i];
#pragma omp parallel for if (sizes[i] > 32768) schedule(static)
        for (int64_t k = 0; k < sizes[i]; k++) g[k] *= s;
    }
}
