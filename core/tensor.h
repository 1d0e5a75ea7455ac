/* tensor.h — dense row-major tensors.
 *
 * An ot_tensor is a small value type: dtype, shape and a data pointer. It owns its data
 * only when `owned` is set (ot_tensor_alloc / ot_tensor_copy); otherwise the data belongs
 * to someone else (an mmapped file, a protobuf message, the executor's arena) and must
 * outlive the tensor. Rank is at most OT_MAX_DIMS; a rank-0 tensor has one element. */
#ifndef OT_TENSOR_H
#define OT_TENSOR_H

#include <stdint.h>

#include "dtype.h"
#include "status.h"

#define OT_MAX_DIMS 8

typedef struct ot_tensor {
    ot_dtype dtype;
    int ndim;
    int64_t dims[OT_MAX_DIMS];
    void *data;
    int owned; /* 1: data was malloc'd for this tensor and is freed with it */
} ot_tensor;

int64_t ot_shape_numel(int ndim, const int64_t *dims);
static inline int64_t ot_tensor_numel(const ot_tensor *t) { return ot_shape_numel(t->ndim, t->dims); }
static inline size_t ot_tensor_nbytes(const ot_tensor *t) {
    return (size_t)ot_tensor_numel(t) * ot_dtype_size(t->dtype);
}

/* Allocates a zeroed, owned tensor. The struct itself is heap-allocated; free with ot_tensor_free. */
ot_status ot_tensor_new(ot_tensor **out, ot_dtype dt, int ndim, const int64_t *dims);
/* Heap copy (struct and data) of any tensor. */
ot_status ot_tensor_clone(ot_tensor **out, const ot_tensor *src);
/* Frees the struct and, when owned, the data. NULL is fine. */
void ot_tensor_free(ot_tensor *t);

/* "[2, 3, 4]" into buf; returns buf. */
char *ot_shape_str(char *buf, size_t n, int ndim, const int64_t *dims);
int ot_shape_equal(int na, const int64_t *a, int nb, const int64_t *b);

/* Element i of an integer tensor (any int dtype or bool) as int64. */
int64_t ot_tensor_get_i64(const ot_tensor *t, int64_t i);
/* Element i of a numeric tensor as double. */
double ot_tensor_get_f64(const ot_tensor *t, int64_t i);

#endif
