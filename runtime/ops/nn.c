/* nn.c — the nn op family table: Softmax, LogSoftmax, LayerNormalization, Gelu.
 *
 * Owns the registry entries only; kernels live in nn_softmax.c, nn_layernorm.c and
 * nn_gelu.c. All are row- or element-wise over contiguous row-major tensors and write
 * their outputs with `=`. Softmax/LogSoftmax split at opset 13 (coerce-to-2D before, one
 * axis after). Dropout belongs to the shape family. Ranges end at opset 21. */
#include "nn_internal.h"

#define SOFTMAX_ENTRY(OP, LO, HI)                                                                    \
    {.domain = "", .op_type = OP, .since = LO, .until = HI, .min_in = 1, .max_in = 1,                \
     .attr_size = sizeof(ot_softmax_attr), .parse = ot_softmax_parse, .infer = ot_softmax_infer,     \
     .cpu = ot_softmax_cpu}

const ot_op_def ot_ops_nn[] = {
    SOFTMAX_ENTRY("Softmax", 1, 12),     /* coerce to 2-D at axis (default 1) */
    SOFTMAX_ENTRY("Softmax", 13, 21),    /* single axis (default -1) */
    SOFTMAX_ENTRY("LogSoftmax", 1, 12),
    SOFTMAX_ENTRY("LogSoftmax", 13, 21),
    {.domain = "", .op_type = "LayerNormalization", .since = 17, .until = 21, .min_in = 2, .max_in = 3,
     .attr_size = sizeof(ot_layernorm_attr), .parse = ot_layernorm_parse, .infer = ot_layernorm_infer,
     .cpu = ot_layernorm_cpu},
    {.domain = "", .op_type = "Gelu", .since = 20, .until = 21, .min_in = 1, .max_in = 1,
     .attr_size = sizeof(ot_gelu_attr), .parse = ot_gelu_parse, .infer = ot_gelu_infer, .cpu = ot_gelu_cpu},
};
const int ot_ops_nn_count = (int)(sizeof ot_ops_nn / sizeof ot_ops_nn[0]);
