/* st_roundtrip.c — test-only helper for tests/parity/test_safetensors_py.py: converts between
 * a safetensors file and a folder of .npy files, through onnxtune's reader and writer only.
 *
 *   st_roundtrip to-npy   IN.safetensors OUTDIR   (OUTDIR is created if missing)
 *   st_roundtrip from-npy INDIR OUT.safetensors
 *
 * The folder holds index.json — {"tensors": [{"name", "dtype" (safetensors string),
 * "shape", "file"}], "metadata": {k: v}} with tensors in file order — and one NNNN.npy per
 * tensor. NumPy has no bfloat16, so BF16 tensors travel as uint16 .npy files with the raw
 * bits; index.json says what they are. The metadata keys are listed by reading the header's
 * "__metadata__" object directly (the library API looks metadata up by key only), and each
 * value is then taken from ot_safetensors_meta, so the API is what the test checks.
 * Errors go to stderr as "st_roundtrip: <message>" with exit status 1. */
#include <cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/npy.h"
#include "importer/mapped_file.h"
#include "onnxtune/safetensors.h"

static int fail(void) {
    fprintf(stderr, "st_roundtrip: %s\n", ot_last_error());
    return 1;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The "__metadata__" keys of the header of `path` (a cJSON array of strings). */
static ot_status meta_keys(const char *path, cJSON **keys) {
    *keys = cJSON_CreateArray();
    ot_mapped_file mf;
    OT_TRY(ot_mapped_open(&mf, path));
    const unsigned char *b = mf.data;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    cJSON *h = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    ot_mapped_close(&mf);
    if (!h) return ot_errorf(OT_E_FORMAT, "'%s': header does not parse (yet the reader accepted it)", path);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
    for (const cJSON *e = m ? m->child : NULL; e; e = e->next) cJSON_AddItemToArray(*keys, cJSON_CreateString(e->string));
    cJSON_Delete(h);
    return OT_OK;
}

static ot_status to_npy(const char *in, const char *dir) {
    ot_safetensors *st;
    OT_TRY(ot_safetensors_open(in, &st));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        ot_safetensors_close(st);
        return ot_errorf(OT_E_IO, "cannot create '%s': %s", dir, strerror(errno));
    }
    cJSON *index = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(index, "tensors");
    ot_status s = OT_OK;
    for (int i = 0; i < ot_safetensors_count(st) && s == OT_OK; i++) {
        ot_tensor t = *ot_safetensors_tensor(st, i);
        char fname[32];
        snprintf(fname, sizeof fname, "%04d.npy", i);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", ot_safetensors_name(st, i));
        cJSON_AddStringToObject(e, "dtype", ot_safetensors_dtype_name(t.dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t.ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t.dims[d]));
        cJSON_AddStringToObject(e, "file", fname);
        cJSON_AddItemToArray(list, e);
        if (ot_safetensors_find(st, ot_safetensors_name(st, i)) != ot_safetensors_tensor(st, i))
            s = ot_errorf(OT_E_INTERNAL, "find('%s') does not return tensor %d", ot_safetensors_name(st, i), i);
        if (t.dtype == OT_BF16) t.dtype = OT_U16; /* raw bits; index.json says BF16 */
        char *p = join(dir, fname);
        if (s == OT_OK) s = ot_npy_write(p, &t);
        free(p);
    }
    cJSON *keys = NULL;
    if (s == OT_OK) s = meta_keys(in, &keys);
    cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
    for (const cJSON *k = keys ? keys->child : NULL; k && s == OT_OK; k = k->next) {
        const char *v = ot_safetensors_meta(st, k->valuestring);
        if (!v) s = ot_errorf(OT_E_INTERNAL, "metadata key '%s' is in the header but ot_safetensors_meta misses it", k->valuestring);
        else cJSON_AddStringToObject(meta, k->valuestring, v);
    }
    cJSON_Delete(keys);
    if (s == OT_OK) {
        char *text = cJSON_Print(index), *p = join(dir, "index.json");
        s = ot_write_file_atomic(p, text, strlen(text));
        free(p);
        cJSON_free(text);
    }
    cJSON_Delete(index);
    ot_safetensors_close(st);
    return s;
}

static ot_status from_npy(const char *dir, const char *out) {
    char *ip = join(dir, "index.json");
    ot_mapped_file mf;
    ot_status s = ot_mapped_open(&mf, ip);
    free(ip);
    if (s != OT_OK) return s;
    cJSON *index = cJSON_ParseWithLength(mf.data, mf.size);
    ot_mapped_close(&mf);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(index, "tensors");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(index, "metadata");
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(index);
        return ot_errorf(OT_E_FORMAT, "'%s/index.json' lacks a \"tensors\" list", dir);
    }
    int n = cJSON_GetArraySize(list), nm = cJSON_GetArraySize(meta);
    ot_named_tensor *nt = calloc((size_t)n + 1, sizeof *nt);
    ot_tensor **owned = calloc((size_t)n + 1, sizeof *owned);
    const char **mv = calloc(2 * (size_t)nm + 1, sizeof *mv);
    int k = 0;
    for (const cJSON *e = list->child; e && s == OT_OK; e = e->next, k++) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
        const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
        const char *file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "file"));
        if (!name || !dt || !file) {
            s = ot_errorf(OT_E_FORMAT, "'%s/index.json': entry %d lacks name, dtype or file", dir, k);
            break;
        }
        char *p = join(dir, file);
        s = ot_npy_read(p, &owned[k]);
        free(p);
        if (s != OT_OK) break;
        ot_dtype want = ot_dtype_from_name(dt);
        if (want == OT_BF16 && owned[k]->dtype == OT_U16) owned[k]->dtype = OT_BF16;
        if (owned[k]->dtype != want)
            s = ot_errorf(OT_E_FORMAT, "'%s': index.json says %s, the file holds %s", file, dt,
                          ot_dtype_name(owned[k]->dtype));
        nt[k].name = name;
        nt[k].t = owned[k];
    }
    int j = 0;
    for (const cJSON *m = meta ? meta->child : NULL; m; m = m->next) {
        mv[j++] = m->string;
        mv[j++] = cJSON_GetStringValue(m);
    }
    if (s == OT_OK) s = ot_safetensors_write(out, nt, n, mv, nm);
    for (int i = 0; i < n; i++) ot_tensor_free(owned[i]);
    free(owned);
    free(nt);
    free(mv);
    cJSON_Delete(index);
    return s;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "to-npy") == 0) return to_npy(argv[2], argv[3]) == OT_OK ? 0 : fail();
    if (argc == 4 && strcmp(argv[1], "from-npy") == 0) return from_npy(argv[2], argv[3]) == OT_OK ? 0 : fail();
    fprintf(stderr, "usage: st_roundtrip to-npy IN.safetensors OUTDIR | from-npy INDIR OUT.safetensors\n");
    return 2;
}
