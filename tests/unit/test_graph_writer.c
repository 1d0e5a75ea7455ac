/* test_graph_writer.c — the graph-IR ONNX writer (ot_export_graph_onnx): every test model
 * loaded with ot_onnx_load, written from its graph, reloaded and compared with the first
 * load field by field (opsets, inputs/outputs with dtypes and symbolic dims, nodes with
 * names, edges and every attribute, initializer names, dtypes, shapes and bytes); updates
 * replace named initializers (a f64 update is rounded to the f32 initializer); bad updates and
 * onnxtune-internal nodes are refused naming the culprit, leaving no file behind; a small
 * inline limit sends the large initializers to "<dst>.data" at 64-byte aligned offsets and
 * the reloaded model still has every byte. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exporter/onnx_graph_writer.h"
#include "importer/mapped_file.h"
#include "onnx.pb-c.h"
#include "onnxtune/export.h"
#include "onnxtune/importer.h"
#include "ot_test.h"

static char tmpdir[256];
static const char models_dir[] = OT_SOURCE_DIR "/tests/models";

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int count_named(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static const char *name_of(const ot_graph *g, int v) { return v >= 0 ? g->values[v].name : ""; }

static int same_str(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

static int same_tensor(const ot_tensor *a, const ot_tensor *b) {
    return a->dtype == b->dtype && ot_shape_equal(a->ndim, a->dims, b->ndim, b->dims) &&
           !memcmp(a->data, b->data, ot_tensor_nbytes(a));
}

static int same_attr(const ot_attr *a, const ot_attr *b) {
    if (strcmp(a->name, b->name) || a->type != b->type) return 0;
    switch (a->type) {
    case OT_ATTR_FLOAT: return !memcmp(&a->f, &b->f, sizeof a->f);
    case OT_ATTR_INT: return a->i == b->i;
    case OT_ATTR_STRING: return !strcmp(a->s, b->s);
    case OT_ATTR_TENSOR: return same_tensor(a->t, b->t);
    case OT_ATTR_FLOATS: return a->n == b->n && !memcmp(a->floats, b->floats, (size_t)a->n * sizeof(float));
    case OT_ATTR_INTS: return a->n == b->n && !memcmp(a->ints, b->ints, (size_t)a->n * sizeof(int64_t));
    case OT_ATTR_STRINGS:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++)
            if (strcmp(a->strings[i], b->strings[i])) return 0;
        return 1;
    default: return 0;
    }
}

static int same_decl(const ot_value *a, const ot_value *b) {
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d] || !same_str(a->dim_param[d], b->dim_param[d])) return 0;
    return 1;
}

/* Counts what differs between two graphs; `skip` names an initializer not compared (updated). */
static int graph_diffs(const ot_graph *a, const ot_graph *b, const char *skip) {
    int bad = 0;
    if (a->n_opsets != b->n_opsets || a->n_nodes != b->n_nodes || a->n_inputs != b->n_inputs ||
        a->n_outputs != b->n_outputs)
        return 1000;
    for (int i = 0; i < a->n_opsets; i++)
        bad += strcmp(a->opsets[i].domain, b->opsets[i].domain) || a->opsets[i].version != b->opsets[i].version;
    for (int i = 0; i < a->n_inputs; i++) bad += !same_decl(&a->values[a->inputs[i]], &b->values[b->inputs[i]]);
    for (int i = 0; i < a->n_outputs; i++) bad += !same_decl(&a->values[a->outputs[i]], &b->values[b->outputs[i]]);
    for (int i = 0; i < a->n_nodes; i++) {
        const ot_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (strcmp(x->op_type, y->op_type) || strcmp(x->domain, y->domain) || strcmp(x->name, y->name) ||
            x->n_in != y->n_in || x->n_out != y->n_out || x->n_attrs != y->n_attrs) {
            bad++;
            continue;
        }
        for (int k = 0; k < x->n_in; k++) bad += strcmp(name_of(a, x->in[k]), name_of(b, y->in[k])) != 0;
        for (int k = 0; k < x->n_out; k++) bad += strcmp(name_of(a, x->out[k]), name_of(b, y->out[k])) != 0;
        for (int k = 0; k < x->n_attrs; k++) bad += !same_attr(&x->attrs[k], &y->attrs[k]);
    }
    int na = 0, nb = 0;
    for (int v = 0; v < a->n_values; v++) {
        if (!a->values[v].init) continue;
        na++;
        int w = ot_graph_find(b, a->values[v].name);
        if (w < 0 || !b->values[w].init) {
            bad++;
            continue;
        }
        if (skip && !strcmp(skip, a->values[v].name)) continue;
        bad += !same_tensor(a->values[v].init, b->values[w].init);
    }
    for (int v = 0; v < b->n_values; v++) nb += b->values[v].init != NULL;
    return bad + (na != nb);
}

static void model_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", models_dir, name); }
static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static void test_roundtrip_models(void) {
    DIR *d = opendir(models_dir);
    CHECK(d != NULL);
    if (!d) return;
    int n_models = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".onnx")) continue;
        char src[4096 + 256], dst[512];
        snprintf(src, sizeof src, "%s/%s", models_dir, e->d_name);
        tmp_path(dst, sizeof dst, e->d_name);
        ot_graph *a = NULL, *b = NULL;
        CHECK_OK(ot_onnx_load(src, &a));
        if (!a) continue;
        CHECK_OK(ot_export_graph_onnx(a, NULL, 0, dst));
        CHECK_OK(ot_onnx_load(dst, &b));
        if (b) {
            int diffs = graph_diffs(a, b, NULL);
            if (diffs) fprintf(stderr, "%s: %d differences after the round trip\n", e->d_name, diffs);
            CHECK(diffs == 0);
            CHECK(b->ir_version == 8);
        }
        CHECK(!file_exists(strcat(dst, ".data"))); /* small models stay inline */
        ot_graph_free(a);
        ot_graph_free(b);
        n_models++;
    }
    closedir(d);
    CHECK(n_models >= 4);
}

/* Symbolic dims come back as dim_param, and an update lands (converted from f64). */
static void test_updates(void) {
    char src[4200], dst[512];
    model_path(src, sizeof src, "gpt2_tiny.onnx");
    tmp_path(dst, sizeof dst, "gpt2_updated.onnx");
    ot_graph *a = NULL, *b = NULL;
    CHECK_OK(ot_onnx_load(src, &a));
    if (!a) return;
    const ot_value *in = &a->values[a->inputs[0]];
    CHECK(in->ndim == 2 && in->dims[0] < 0 && in->dim_param[0] != NULL);
    /* the first 2-D float initializer */
    int w = -1;
    for (int v = 0; v < a->n_values && w < 0; v++)
        if (a->values[v].init && a->values[v].init->ndim == 2 && a->values[v].init->dtype == OT_F32) w = v;
    CHECK(w >= 0);
    if (w < 0) return;
    const ot_tensor *orig = a->values[w].init;
    ot_tensor *up = NULL;
    CHECK_OK(ot_tensor_new(&up, OT_F64, 2, orig->dims));
    int64_t n = ot_tensor_numel(orig);
    for (int64_t i = 0; i < n; i++) ((double *)up->data)[i] = 0.1 * (double)(i % 97) - 3.0 + 1e-9;
    ot_named_tensor u = {a->values[w].name, up};
    CHECK_OK(ot_export_graph_onnx(a, &u, 1, dst));
    CHECK_OK(ot_onnx_load(dst, &b));
    if (b) {
        CHECK(graph_diffs(a, b, a->values[w].name) == 0);
        int x = ot_graph_find(b, a->values[w].name);
        CHECK(x >= 0 && b->values[x].init->dtype == OT_F32);
        int ok = 1;
        for (int64_t i = 0; x >= 0 && i < n; i++) /* rounded once from the f64 update */
            ok &= ((float *)b->values[x].init->data)[i] == (float)(0.1 * (double)(i % 97) - 3.0 + 1e-9);
        CHECK(ok);
        CHECK(b->values[b->inputs[0]].dim_param[0] && !strcmp(b->values[b->inputs[0]].dim_param[0], in->dim_param[0]));
    }
    ot_graph_free(b);

    /* bad updates: unknown name, wrong shape, int into float; nothing written */
    char bad[512];
    tmp_path(bad, sizeof bad, "bad.onnx");
    ot_named_tensor nope = {"no.such.weight", up};
    CHECK(ot_export_graph_onnx(a, &nope, 1, bad) != OT_OK && strstr(ot_last_error(), "no.such.weight"));
    int64_t dims[2] = {3, 5};
    ot_tensor *small = NULL, *ints = NULL;
    CHECK_OK(ot_tensor_new(&small, OT_F32, 2, dims));
    CHECK_OK(ot_tensor_new(&ints, OT_I64, 2, orig->dims));
    ot_named_tensor shp = {a->values[w].name, small}, typ = {a->values[w].name, ints};
    CHECK(ot_export_graph_onnx(a, &shp, 1, bad) != OT_OK && strstr(ot_last_error(), "[3, 5]") &&
          strstr(ot_last_error(), a->values[w].name));
    CHECK(ot_export_graph_onnx(a, &typ, 1, bad) != OT_OK && strstr(ot_last_error(), "int64"));
    CHECK(!file_exists(bad) && count_named(tmpdir, ".tmp.") == 0);
    ot_tensor_free(small);
    ot_tensor_free(ints);
    ot_tensor_free(up);
    ot_graph_free(a);
}

static void test_internal_ops_refused(void) {
    char src[4200], dst[512];
    model_path(src, sizeof src, "mlp_gemm.onnx");
    tmp_path(dst, sizeof dst, "with_loss.onnx");
    ot_graph *g = NULL;
    CHECK_OK(ot_onnx_load(src, &g));
    if (!g) return;
    int labels, loss;
    CHECK_OK(ot_graph_value(g, "labels", &labels));
    CHECK_OK(ot_graph_value(g, "ot.loss", &loss));
    int in[2] = {g->outputs[0], labels};
    CHECK_OK(ot_graph_add_node(g, "MSELoss", "ai.onnxtune", "ot.loss_head", in, 2, &loss, 1, NULL));
    ot_status st = ot_export_graph_onnx(g, NULL, 0, dst);
    CHECK(st != OT_OK);
    CHECK(strstr(ot_last_error(), "ot.loss_head") && strstr(ot_last_error(), "ai.onnxtune"));
    CHECK(!file_exists(dst) && count_named(tmpdir, ".tmp.") == 0);
    ot_graph_free(g);
}

/* Reads the written proto and checks every external initializer's entries. */
static int check_external_entries(const char *path, const char *location, int *n_ext) {
    ot_mapped_file f;
    if (ot_mapped_open(&f, path) != OT_OK) return 0;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, f.size, f.data);
    ot_mapped_close(&f);
    if (!mp) return 0;
    int ok = 1;
    *n_ext = 0;
    for (size_t i = 0; i < mp->graph->n_initializer; i++) {
        const Onnx__TensorProto *tp = mp->graph->initializer[i];
        if (!tp->has_data_location || tp->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
            ok &= tp->has_raw_data && tp->raw_data.len < 1024;
            continue;
        }
        (*n_ext)++;
        ok &= !tp->has_raw_data;
        for (size_t k = 0; k < tp->n_external_data; k++) {
            const char *key = tp->external_data[k]->key, *val = tp->external_data[k]->value;
            if (!strcmp(key, "location")) ok &= !strcmp(val, location);
            if (!strcmp(key, "offset")) ok &= strtoull(val, NULL, 10) % 64 == 0;
        }
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    return ok;
}

static void test_external_data(void) {
    char src[4200], dst[512], data[600];
    model_path(src, sizeof src, "gpt2_tiny.onnx");
    tmp_path(dst, sizeof dst, "big.onnx");
    snprintf(data, sizeof data, "%s.data", dst);
    ot_graph *a = NULL, *b = NULL;
    CHECK_OK(ot_onnx_load(src, &a));
    if (!a) return;
    CHECK_OK(ot_export_graph_onnx_limit(a, NULL, 0, dst, 100000)); /* ~0.6 MB: over this limit */
    CHECK(file_exists(data));
    struct stat sb;
    CHECK(stat(dst, &sb) == 0 && sb.st_size <= 100000);
    int n_ext = 0;
    CHECK(check_external_entries(dst, "big.onnx.data", &n_ext));
    CHECK(n_ext >= 10);
    CHECK_OK(ot_onnx_load(dst, &b));
    if (b) CHECK(graph_diffs(a, b, NULL) == 0);
    ot_graph_free(b);

    char tiny[512];
    tmp_path(tiny, sizeof tiny, "limit10.onnx");
    CHECK(ot_export_graph_onnx_limit(a, NULL, 0, tiny, 10) != OT_OK && strstr(ot_last_error(), "external data"));
    CHECK(!file_exists(tiny) && count_named(tmpdir, "limit10") == 0 && count_named(tmpdir, ".tmp.") == 0);
    ot_graph_free(a);
}

int main(void) {
    ot_test_mkdtemp(tmpdir, sizeof tmpdir, "ot_test_graph_writer_");
    OT_RUN(test_roundtrip_models);
    OT_RUN(test_updates);
    OT_RUN(test_internal_ops_refused);
    OT_RUN(test_external_data);
    ot_test_rmtree(tmpdir);
    return OT_TEST_EXIT();
}
