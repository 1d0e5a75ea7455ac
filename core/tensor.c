/* tensor.c — tensor allocation and small helpers; see tensor.h. */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t ot_shape_numel(int ndim, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    return n;
}

ot_status ot_tensor_new(ot_tensor **out, ot_dtype dt, int ndim, const int64_t *dims) {
    *out = NULL;
    if (ndim < 0 || ndim > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "tensor rank %d exceeds the maximum of %d", ndim, OT_MAX_DIMS);
    if (ot_dtype_size(dt) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "tensors of dtype %s are not supported", ot_dtype_name(dt));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) return ot_errorf(OT_E_SHAPE, "negative dimension %lld", (long long)dims[i]);
        if (dims[i] && n > INT64_MAX / 16 / dims[i])
            return ot_errorf(OT_E_SHAPE, "tensor too large");
        n *= dims[i];
    }
    ot_tensor *t = calloc(1, sizeof *t);
    if (!t) return ot_errorf(OT_E_NOMEM, "out of memory allocating a tensor header");
    size_t bytes = (size_t)n * ot_dtype_size(dt);
    t->data = calloc(bytes ? bytes : 1, 1);
    if (!t->data) {
        free(t);
        return ot_errorf(OT_E_NOMEM, "out of memory allocating %zu bytes", bytes);
    }
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    t->owned = 1;
    *out = t;
    return OT_OK;
}

ot_status ot_tensor_clone(ot_tensor **out, const ot_tensor *src) {
    OT_TRY(ot_tensor_new(out, src->dtype, src->ndim, src->dims));
    if (ot_tensor_nbytes(src)) memcpy((*out)->data, src->data, ot_tensor_nbytes(src));
    return OT_OK;
}

void ot_tensor_free(ot_tensor *t) {
    if (!t) return;
    if (t->owned) free(t->data);
    free(t);
}

char *ot_shape_str(char *buf, size_t n, int ndim, const int64_t *dims) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int ot_shape_equal(int na, const int64_t *a, int nb, const int64_t *b) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

int64_t ot_tensor_get_i64(const ot_tensor *t, int64_t i) {
    int64_t v;
    ot_convert(&v, OT_I64, (const char *)t->data + i * (int64_t)ot_dtype_size(t->dtype), t->dtype, 1);
    return v;
}

double ot_tensor_get_f64(const ot_tensor *t, int64_t i) {
    double v;
    ot_convert(&v, OT_F64, (const char *)t->data + i * (int64_t)ot_dtype_size(t->dtype), t->dtype, 1);
    return v;
}
