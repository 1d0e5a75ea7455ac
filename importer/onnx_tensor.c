/* onnx_tensor.c — TensorProto -> ot_tensor: raw_data, typed fields and external data.
 *
 * Little-endian hosts only (raw_data is little-endian by the spec); checked at compile time. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "importer/onnx_model.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "onnxtune reads little-endian tensor data");

void ot_onnx_model_free(void *p) {
    ot_onnx_model *m = p;
    if (!m) return;
    for (int i = 0; i < m->n_ext; i++) ot_mapped_close(&m->ext[i]);
    free(m->ext);
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
    free(m->path);
    free(m->dir);
    free(m);
}

/* The mapped external file at real path `real`, opening it on first use. */
static ot_status external_file(ot_onnx_model *m, const char *real, const ot_mapped_file **out) {
    for (int i = 0; i < m->n_ext; i++)
        if (strcmp(m->ext[i].path, real) == 0) {
            *out = &m->ext[i];
            return OT_OK;
        }
    ot_mapped_file *e = realloc(m->ext, (size_t)(m->n_ext + 1) * sizeof *e);
    if (!e) return ot_errorf(OT_E_NOMEM, "out of memory");
    m->ext = e;
    OT_TRY(ot_mapped_open(&m->ext[m->n_ext], real));
    *out = &m->ext[m->n_ext++];
    return OT_OK;
}

static ot_status parse_u64(const char *s, const char *key, const char *what, uint64_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return ot_errorf(OT_E_FORMAT, "%s: external data '%s' is not a number: '%s'", what, key, s);
    *v = x;
    return OT_OK;
}

static ot_status load_external(ot_onnx_model *m, const Onnx__TensorProto *tp, const char *what, size_t nbytes,
                               ot_tensor *t) {
    const char *location = NULL;
    uint64_t offset = 0, length = UINT64_MAX;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const char *k = tp->external_data[i]->key ? tp->external_data[i]->key : "";
        const char *v = tp->external_data[i]->value ? tp->external_data[i]->value : "";
        if (strcmp(k, "location") == 0) location = v;
        else if (strcmp(k, "offset") == 0) OT_TRY(parse_u64(v, k, what, &offset));
        else if (strcmp(k, "length") == 0) OT_TRY(parse_u64(v, k, what, &length));
    }
    if (!location) return ot_errorf(OT_E_FORMAT, "%s: external data without a 'location'", what);
    if (!m->dir) return ot_errorf(OT_E_INVALID, "%s: external data '%s' cannot be resolved for a model read from memory", what, location);
    char *real;
    OT_TRY(ot_confined_path(m->dir, location, what, &real));
    const ot_mapped_file *f = NULL;
    ot_status st = external_file(m, real, &f);
    free(real);
    OT_TRY(st);
    if (length != UINT64_MAX && length != nbytes)
        return ot_errorf(OT_E_FORMAT, "%s: external data length %" PRIu64 " does not match its shape and dtype (%zu bytes)",
                         what, length, nbytes);
    if (offset > f->size || nbytes > f->size - offset)
        return ot_errorf(OT_E_FORMAT, "%s: external data [%" PRIu64 ", +%zu) lies outside '%s' (%zu bytes)", what, offset,
                         nbytes, location, f->size);
    const char *src = (const char *)f->data + offset;
    size_t align = ot_dtype_size(t->dtype);
    if (nbytes && (uintptr_t)src % align == 0) {
        t->data = (void *)src; /* read-only map; the graph never writes initializers */
        t->owned = 0;
    } else {
        t->data = malloc(nbytes ? nbytes : 1); /* misaligned in the file: copy once */
        if (!t->data) return ot_errorf(OT_E_NOMEM, "%s: out of memory (%zu bytes)", what, nbytes);
        if (nbytes) memcpy(t->data, src, nbytes);
        t->owned = 1;
    }
    return OT_OK;
}

/* Typed-field storage: which repeated field holds a dtype's values. */
static ot_status load_typed(const Onnx__TensorProto *tp, const char *what, int64_t numel, ot_tensor *t) {
    size_t count;
    const void *src;
    ot_dtype src_dt;
    switch (t->dtype) {
    case OT_F32: count = tp->n_float_data, src = tp->float_data, src_dt = OT_F32; break;
    case OT_F64: count = tp->n_double_data, src = tp->double_data, src_dt = OT_F64; break;
    case OT_I64: count = tp->n_int64_data, src = tp->int64_data, src_dt = OT_I64; break;
    case OT_U32: case OT_U64: count = tp->n_uint64_data, src = tp->uint64_data, src_dt = OT_U64; break;
    case OT_I32: case OT_I16: case OT_I8: case OT_U8: case OT_U16: case OT_BOOL: case OT_F16: case OT_BF16:
        count = tp->n_int32_data, src = tp->int32_data, src_dt = OT_I32;
        break;
    default: return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported", what, ot_dtype_name(t->dtype));
    }
    if ((int64_t)count != numel)
        return ot_errorf(OT_E_FORMAT, "%s: holds %zu values but its shape needs %" PRId64, what, count, numel);
    if (src_dt == t->dtype && numel) { /* float_data / double_data / int64_data in place */
        t->data = (void *)src;
        t->owned = 0;
        return OT_OK;
    }
    size_t nbytes = (size_t)numel * ot_dtype_size(t->dtype);
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->data) return ot_errorf(OT_E_NOMEM, "%s: out of memory", what);
    t->owned = 1;
    if (t->dtype == OT_F16 || t->dtype == OT_BF16) { /* the 16 bits are stored in int32 */
        for (int64_t i = 0; i < numel; i++) ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
    } else {
        ot_convert(t->data, t->dtype, src, src_dt, (size_t)numel);
    }
    return OT_OK;
}

ot_status ot_onnx_tensor(ot_onnx_model *m, const Onnx__TensorProto *tp, const char *what, ot_tensor **out) {
    *out = NULL;
    ot_dtype dt = (ot_dtype)(tp->has_data_type ? tp->data_type : 0);
    if (ot_dtype_size(dt) == 0)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: dtype %s is not supported", what, ot_dtype_name(dt));
    if (tp->n_dims > OT_MAX_DIMS)
        return ot_errorf(OT_E_UNSUPPORTED, "%s: rank %zu exceeds %d", what, tp->n_dims, OT_MAX_DIMS);
    if (tp->segment) return ot_errorf(OT_E_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    int64_t numel = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0) return ot_errorf(OT_E_FORMAT, "%s: negative dimension %" PRId64, what, tp->dims[i]);
        if (tp->dims[i] && numel > (INT64_MAX >> 4) / tp->dims[i])
            return ot_errorf(OT_E_FORMAT, "%s: shape is too large", what);
        numel *= tp->dims[i];
    }
    size_t nbytes = (size_t)numel * ot_dtype_size(dt);
    ot_tensor *t = calloc(1, sizeof *t);
    if (!t) return ot_errorf(OT_E_NOMEM, "out of memory");
    t->dtype = dt;
    t->ndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) t->dims[i] = tp->dims[i];
    ot_status st;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        st = load_external(m, tp, what, nbytes, t);
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != nbytes)
            st = ot_errorf(OT_E_FORMAT, "%s: raw_data has %zu bytes but shape and dtype need %zu", what, tp->raw_data.len,
                           nbytes);
        else if (nbytes == 0 || (uintptr_t)tp->raw_data.data % ot_dtype_size(dt) != 0) {
            t->data = malloc(nbytes ? nbytes : 1);
            t->owned = 1;
            st = t->data ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
            if (t->data && nbytes) memcpy(t->data, tp->raw_data.data, nbytes);
        } else {
            t->data = tp->raw_data.data; /* owned by the proto, which the graph keeps */
            st = OT_OK;
        }
    } else {
        st = load_typed(tp, what, numel, t);
        if (st == OT_OK && !t->data) { /* empty tensor */
            t->data = malloc(1);
            t->owned = 1;
            if (!t->data) st = ot_errorf(OT_E_NOMEM, "out of memory");
        }
    }
    if (st != OT_OK) {
        ot_tensor_free(t);
        return st;
    }
    *out = t;
    return OT_OK;
}
