/* registry.c — gathers the op family tables and looks ops up by (domain, op, opset).
 * A linear scan is fine: lookups happen once per node at plan time, never per step. */
#include "op.h"

#include <string.h>

static const struct {
    const ot_op_def *defs;
    const int *count;
} families[] = {
    {ot_ops_elementwise, &ot_ops_elementwise_count},
    {ot_ops_shape, &ot_ops_shape_count},
    {ot_ops_linalg, &ot_ops_linalg_count},
    {ot_ops_nn, &ot_ops_nn_count},
    {ot_ops_reduce, &ot_ops_reduce_count},
    {ot_ops_grad_tensor, &ot_ops_grad_tensor_count},
    {ot_ops_grad_nn, &ot_ops_grad_nn_count},
    {ot_ops_loss, &ot_ops_loss_count},
    {ot_ops_train, &ot_ops_train_count},
};
#define N_FAMILIES (int)(sizeof families / sizeof families[0])

int ot_op_count(void) {
    int n = 0;
    for (int f = 0; f < N_FAMILIES; f++) n += *families[f].count;
    return n;
}

const ot_op_def *ot_op_at(int i) {
    for (int f = 0; f < N_FAMILIES; f++) {
        if (i < *families[f].count) return &families[f].defs[i];
        i -= *families[f].count;
    }
    return NULL;
}

const ot_op_def *ot_op_find(const char *domain, const char *op_type, int opset, int *known_op) {
    if (known_op) *known_op = 0;
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    for (int i = 0, n = ot_op_count(); i < n; i++) {
        const ot_op_def *d = ot_op_at(i);
        if (strcmp(d->domain, domain) != 0 || strcmp(d->op_type, op_type) != 0) continue;
        if (known_op) *known_op = 1;
        if (opset >= d->since && opset <= d->until) return d;
    }
    return NULL;
}

const char *ot_op_label(const ot_op_ctx *c) { return ot_node_name(c->node); }
