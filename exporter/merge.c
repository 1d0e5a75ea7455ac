/* merge.c — folds a LoRA adapter into its base weight: W' = W + scale · (B·A).
 *
 * Owns only the arithmetic of the merge. A is [r, in], B is [out, r]; W is [out, in] when
 * `w_transposed` (Gemm transB=1, nn.Linear's layout) and [in, out] otherwise (the MatMul
 * weight torch.onnx writes for a Linear), and the result keeps W's layout and dtype.
 * Invariants: one GEMM (OpenBLAS) accumulates into a copy of W held in the compute type —
 * f64 for an f64 W, f32 for everything else — so each element is rounded to W's dtype once
 * (f16/bf16 round to nearest even through core/dtype.h). The inputs are never modified. */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "onnxtune/export.h"

/* `t` in dtype `dt`: borrowed when it already is, else a malloc'd conversion (*tmp set). */
static ot_status as_dtype(const ot_tensor *t, ot_dtype dt, const void **data, void **tmp) {
    *tmp = NULL;
    if (t->dtype == dt) {
        *data = t->data;
        return OT_OK;
    }
    size_t n = (size_t)ot_tensor_numel(t);
    *tmp = malloc(n ? n * ot_dtype_size(dt) : 1);
    if (!*tmp) return ot_errorf(OT_E_NOMEM, "LoRA merge: out of memory converting a %zu-element tensor", n);
    ot_convert(*tmp, dt, t->data, t->dtype, n);
    *data = *tmp;
    return OT_OK;
}

static ot_status check_shapes(const ot_tensor *w, int w_transposed, const ot_tensor *a, const ot_tensor *b) {
    char sw[96], sa[96], sb[96];
    ot_shape_str(sw, sizeof sw, w->ndim, w->dims);
    ot_shape_str(sa, sizeof sa, a->ndim, a->dims);
    ot_shape_str(sb, sizeof sb, b->ndim, b->dims);
    if (!ot_dtype_is_float(w->dtype))
        return ot_errorf(OT_E_UNSUPPORTED, "LoRA merge: weight W is %s; only float32, float16, bfloat16 and float64 can be merged",
                         ot_dtype_name(w->dtype));
    if (!ot_dtype_is_float(a->dtype) || !ot_dtype_is_float(b->dtype))
        return ot_errorf(OT_E_INVALID, "LoRA merge: A (%s) and B (%s) must be float tensors", ot_dtype_name(a->dtype),
                         ot_dtype_name(b->dtype));
    if (w->ndim != 2 || a->ndim != 2 || b->ndim != 2)
        return ot_errorf(OT_E_SHAPE, "LoRA merge: W %s, A %s and B %s must all be 2-D", sw, sa, sb);
    int64_t out = w_transposed ? w->dims[0] : w->dims[1];
    int64_t in = w_transposed ? w->dims[1] : w->dims[0];
    if (a->dims[0] != b->dims[1] || a->dims[1] != in || b->dims[0] != out)
        return ot_errorf(OT_E_SHAPE,
                         "LoRA merge: W %s is [%s] = [%lld, %lld], so A must be [r, %lld] and B [%lld, r] with the same r; "
                         "got A %s and B %s",
                         sw, w_transposed ? "out, in" : "in, out", (long long)w->dims[0], (long long)w->dims[1],
                         (long long)in, (long long)out, sa, sb);
    if (in > INT_MAX || out > INT_MAX || a->dims[0] > INT_MAX)
        return ot_errorf(OT_E_UNSUPPORTED, "LoRA merge: W %s or rank %lld exceeds the BLAS index range", sw,
                         (long long)a->dims[0]);
    return OT_OK;
}

ot_status ot_lora_merge(const ot_tensor *w, int w_transposed, const ot_tensor *a, const ot_tensor *b, float scale,
                        ot_tensor **merged) {
    if (!merged) return ot_errorf(OT_E_INVALID, "LoRA merge: no output pointer");
    *merged = NULL;
    if (!w || !a || !b) return ot_errorf(OT_E_INVALID, "LoRA merge: W, A and B are required");
    OT_TRY(check_shapes(w, w_transposed, a, b));
    const int wide = w->dtype == OT_F64;
    const ot_dtype ct = wide ? OT_F64 : OT_F32; /* compute type */
    const int out = (int)(w_transposed ? w->dims[0] : w->dims[1]);
    const int in = (int)(w_transposed ? w->dims[1] : w->dims[0]);
    const int r = (int)a->dims[0];
    const size_t n = (size_t)in * (size_t)out;

    ot_tensor *res = NULL;
    void *acc_tmp = NULL, *a_tmp = NULL, *b_tmp = NULL;
    const void *ad = NULL, *bd = NULL;
    ot_status st = ot_tensor_new(&res, w->dtype, 2, w->dims);
    if (st != OT_OK) goto done;
    /* The accumulator is the result itself when W is already in the compute type. */
    void *acc = res->data;
    if (w->dtype != ct) {
        acc = acc_tmp = malloc(n ? n * ot_dtype_size(ct) : 1);
        if (!acc_tmp) {
            st = ot_errorf(OT_E_NOMEM, "LoRA merge: out of memory for a %d x %d accumulator", in, out);
            goto done;
        }
    }
    if (n) ot_convert(acc, ct, w->data, w->dtype, n);
    if ((st = as_dtype(a, ct, &ad, &a_tmp)) != OT_OK || (st = as_dtype(b, ct, &bd, &b_tmp)) != OT_OK) goto done;

    if (n && r > 0) {
        /* transposed W [out, in]:  W += scale · B[out, r] · A[r, in]
         * plain W [in, out]:       W += scale · Aᵀ[in, r] · Bᵀ[r, out]  (= (B·A)ᵀ) */
        if (wide) {
            if (w_transposed)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, (double)scale, bd, r, ad, in, 1.0, acc, in);
            else
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, in, out, r, (double)scale, ad, in, bd, r, 1.0, acc, out);
        } else {
            if (w_transposed)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, scale, bd, r, ad, in, 1.0f, acc, in);
            else
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, in, out, r, scale, ad, in, bd, r, 1.0f, acc, out);
        }
    }
    if (acc != res->data && n) ot_convert(res->data, res->dtype, acc, ct, n); /* the single rounding */

done:
    free(acc_tmp);
    free(a_tmp);
    free(b_tmp);
    if (st != OT_OK) {
        ot_tensor_free(res);
        return st;
    }
    *merged = res;
    return OT_OK;
}
