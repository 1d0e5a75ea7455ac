/* linalg.c — the linalg op family table: MatMul, Gemm, Einsum.
 *
 * Owns the registry entries only; the kernels live in linalg_matmul.c, linalg_gemm.c and
 * linalg_einsum.c, all on the batched GEMM engine in linalg_blas.c. Shapes are row-major
 * [..., M, K] x [..., K, N]; every kernel writes its output with `=` (no accumulation into
 * outputs). Entries are split where the ONNX signature changed (Gemm's C became optional
 * in opset 11); ranges end at opset 21. */
#include "linalg_internal.h"

const ot_op_def ot_ops_linalg[] = {
    {.domain = "", .op_type = "MatMul", .since = 1, .until = 21, .min_in = 2, .max_in = 2,
     .infer = ot_matmul_infer, .cpu = ot_matmul_cpu},
    /* Gemm 7..10: C required (unidirectional broadcast). */
    {.domain = "", .op_type = "Gemm", .since = 7, .until = 10, .min_in = 3, .max_in = 3,
     .attr_size = sizeof(ot_gemm_attr), .parse = ot_gemm_parse, .infer = ot_gemm_infer, .cpu = ot_gemm_cpu},
    /* Gemm 11..21: C optional. */
    {.domain = "", .op_type = "Gemm", .since = 11, .until = 21, .min_in = 2, .max_in = 3,
     .attr_size = sizeof(ot_gemm_attr), .parse = ot_gemm_parse, .infer = ot_gemm_infer, .cpu = ot_gemm_cpu},
    {.domain = "", .op_type = "Einsum", .since = 12, .until = 21, .min_in = 1, .max_in = -1,
     .attr_size = sizeof(ot_einsum_attr), .parse = ot_einsum_parse, .infer = ot_einsum_infer, .cpu = ot_einsum_cpu},
};
const int ot_ops_linalg_count = (int)(sizeof ot_ops_linalg / sizeof ot_ops_linalg[0]);
