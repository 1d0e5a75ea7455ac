/* test_export.c — the exporter: LoRA merge (both weight layouts, f32/f16/bf16/f64 W) against
 * a double-precision triple loop; PEFT adapters written and read back exactly, the key
 * spellings PEFT versions use, and malformed adapters; ONNX export of the test models
 * (Gemm [out, in] weights in mlp_gemm, MatMul [in, out] weights in gpt2_tiny) and of a model
 * built here (typed fields, f16, unknown fields), reloaded with ot_onnx_load and compared
 * tensor by tensor with the source; external data kept external, the over-2-GB path (with a
 * small limit), and the error cases (unknown name, shape, dtype, unwritable destination,
 * overwriting the source's external data). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/npy.h"
#include "exporter/onnx_writer.h"
#include "importer/mapped_file.h"
#include "onnx.pb-c.h"
#include "onnxtune/export.h"
#include "onnxtune/importer.h"
#include "onnxtune/safetensors.h"
#include "ot_test.h"

static char tmpdir[256];
static const char models_dir[] = OT_SOURCE_DIR "/tests/models";

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* xorshift64*: uniform in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static ot_tensor *rand_tensor(ot_dtype dt, int64_t d0, int64_t d1, double mag) {
    int64_t dims[2] = {d0, d1};
    ot_tensor *t = NULL;
    if (ot_tensor_new(&t, dt, 2, dims) != OT_OK) return NULL;
    for (int64_t i = 0; i < d0 * d1; i++) {
        float f = (float)(urand() * mag);
        ot_convert((char *)t->data + i * (int64_t)ot_dtype_size(dt), dt, &f, OT_F32, 1);
    }
    return t;
}

static double get(const ot_tensor *t, int64_t i) { return ot_tensor_get_f64(t, i); }

static void path_in(char *buf, size_t n, const char *name) {
    if ((size_t)snprintf(buf, n, "%s/%s", tmpdir, name) >= n) buf[0] = 0;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Number of entries of `dir` whose name contains `part`. */
static int count_named(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static Onnx__ModelProto *read_proto(const char *path) {
    ot_mapped_file f;
    if (ot_mapped_open(&f, path) != OT_OK) return NULL;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, f.size, f.data);
    ot_mapped_close(&f);
    return m;
}

static const Onnx__TensorProto *proto_init(const Onnx__ModelProto *m, const char *name) {
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (!strcmp(m->graph->initializer[i]->name, name)) return m->graph->initializer[i];
    return NULL;
}

static const char *ext_key(const Onnx__TensorProto *tp, const char *key) {
    for (size_t i = 0; i < tp->n_external_data; i++)
        if (!strcmp(tp->external_data[i]->key, key)) return tp->external_data[i]->value;
    return NULL;
}

static const ot_tensor *init_of(const ot_graph *g, const char *name) {
    int i = ot_graph_find(g, name);
    return i >= 0 ? g->values[i].init : NULL;
}

static int same_bytes(const ot_tensor *a, const ot_tensor *b) {
    return a && b && a->dtype == b->dtype && ot_shape_equal(a->ndim, a->dims, b->ndim, b->dims) &&
           memcmp(a->data, b->data, ot_tensor_nbytes(a)) == 0;
}

/* Every initializer of `got` equals `src`'s byte for byte, except those named in `changed`
 * (n of them), which must equal the given tensors. Also the node list is unchanged. */
static void check_export(const ot_graph *src, const ot_graph *got, const ot_named_tensor *changed, int n) {
    int inits_src = 0, inits_got = 0, bad = 0, bad_changed = 0;
    for (int i = 0; i < src->n_values; i++) {
        const ot_value *v = &src->values[i];
        if (!v->init) continue;
        inits_src++;
        const ot_tensor *t = init_of(got, v->name);
        int k = -1;
        for (int j = 0; j < n; j++)
            if (!strcmp(changed[j].name, v->name)) k = j;
        if (k >= 0) {
            if (!same_bytes(t, changed[k].t)) bad_changed++, fprintf(stderr, "  updated '%s' differs\n", v->name);
        } else if (!same_bytes(t, v->init)) {
            bad++;
            fprintf(stderr, "  initializer '%s' changed\n", v->name);
        }
    }
    for (int i = 0; i < got->n_values; i++) inits_got += got->values[i].init != NULL;
    CHECK(bad == 0);
    CHECK(bad_changed == 0);
    CHECK(inits_src == inits_got);
    CHECK(src->n_nodes == got->n_nodes);
    int nodes_same = src->n_nodes == got->n_nodes;
    for (int i = 0; nodes_same && i < src->n_nodes; i++)
        nodes_same = !strcmp(src->nodes[i].op_type, got->nodes[i].op_type) && !strcmp(src->nodes[i].name, got->nodes[i].name) &&
                     src->nodes[i].n_attrs == got->nodes[i].n_attrs;
    CHECK(nodes_same);
    CHECK(src->n_inputs == got->n_inputs && src->n_outputs == got->n_outputs);
}

/* ---- LoRA merge ---- */

/* |got - ref| within half an ulp of got's dtype (plus slack for the f32 GEMM), so a merge
 * that truncates instead of rounding to nearest fails on about half the elements. */
static int within_rounding(double got, double ref, ot_dtype dt) {
    double rel = dt == OT_F64 ? 1e-13 : dt == OT_F32 ? 4e-7 : dt == OT_F16 ? ldexp(1, -11) : ldexp(1, -8);
    double slack = dt == OT_F64 ? 1e-15 : 2e-6;
    return fabs(got - ref) <= rel * fabs(got) * 1.0001 + slack * fmax(1.0, fabs(ref)) + (dt == OT_F16 ? ldexp(1, -25) : 0);
}

static void merge_case(ot_dtype dt, int transposed, int in, int out, int r, float scale) {
    ot_tensor *w = transposed ? rand_tensor(dt, out, in, 2.0) : rand_tensor(dt, in, out, 2.0);
    ot_tensor *a = rand_tensor(OT_F32, r, in, 1.0), *b = rand_tensor(OT_F32, out, r, 1.0), *m = NULL;
    CHECK(w && a && b);
    if (!w || !a || !b) goto done;
    CHECK_OK(ot_lora_merge(w, transposed, a, b, scale, &m));
    if (!m) goto done;
    CHECK(m->dtype == dt && ot_shape_equal(m->ndim, m->dims, w->ndim, w->dims) && m->owned);
    int bad = 0, exact = 0;
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double delta = 0;
            for (int k = 0; k < r; k++) delta += get(b, (int64_t)o * r + k) * get(a, (int64_t)k * in + i);
            int64_t at = transposed ? (int64_t)o * in + i : (int64_t)i * out + o;
            double ref = get(w, at) + (double)scale * delta;
            double got = get(m, at);
            if (!within_rounding(got, ref, dt)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s T=%d [o=%d,i=%d]: got %.9g want %.9g\n", ot_dtype_name(dt), transposed, o, i, got, ref);
            }
            if (dt == OT_F16 || dt == OT_BF16) { /* rounding of the exact value: equal nearly always */
                float rf = (float)ref;
                uint16_t want = dt == OT_F16 ? ot_f32_to_f16(rf) : ot_f32_to_bf16(rf);
                exact += ((const uint16_t *)m->data)[at] == want;
            }
        }
    CHECK(bad == 0);
    if (dt == OT_F16 || dt == OT_BF16) CHECK(exact >= in * out * 99 / 100);
done:
    ot_tensor_free(w);
    ot_tensor_free(a);
    ot_tensor_free(b);
    ot_tensor_free(m);
}

static void test_merge(void) {
    const ot_dtype dts[4] = {OT_F32, OT_F16, OT_BF16, OT_F64};
    for (int d = 0; d < 4; d++)
        for (int t = 0; t < 2; t++) {
            merge_case(dts[d], t, 7, 5, 3, 0.75f);
            merge_case(dts[d], t, 96, 64, 8, 2.0f); /* big enough for OpenBLAS's blocked paths */
        }
}

static void test_merge_edges(void) {
    /* scale 0 and rank-0 adapters leave W bit-identical (f16: no double rounding). */
    ot_tensor *w = rand_tensor(OT_F16, 6, 4, 3.0), *a = rand_tensor(OT_F32, 2, 4, 1), *b = rand_tensor(OT_F32, 6, 2, 1);
    ot_tensor *m = NULL;
    CHECK_OK(ot_lora_merge(w, 1, a, b, 0.0f, &m));
    CHECK(m && same_bytes(m, w));
    ot_tensor_free(m);
    m = NULL;
    ot_tensor *a0 = rand_tensor(OT_F32, 0, 4, 1), *b0 = rand_tensor(OT_F32, 6, 0, 1);
    CHECK_OK(ot_lora_merge(w, 1, a0, b0, 1.0f, &m));
    CHECK(m && same_bytes(m, w));
    ot_tensor_free(m);
    m = NULL;

    /* A known product by hand: W [2,2] (out,in) = 0, A = [[1, 2]], B = [[3], [4]], scale 0.5:
     * B·A = [[3, 6], [4, 8]] -> [[1.5, 3], [2, 4]]; the [in, out] layout holds its transpose. */
    int64_t d22[2] = {2, 2}, d12[2] = {1, 2}, d21[2] = {2, 1};
    ot_tensor *w2, *a2, *b2;
    CHECK_OK(ot_tensor_new(&w2, OT_F32, 2, d22));
    CHECK_OK(ot_tensor_new(&a2, OT_F32, 2, d12));
    CHECK_OK(ot_tensor_new(&b2, OT_F32, 2, d21));
    ((float *)a2->data)[0] = 1, ((float *)a2->data)[1] = 2;
    ((float *)b2->data)[0] = 3, ((float *)b2->data)[1] = 4;
    CHECK_OK(ot_lora_merge(w2, 1, a2, b2, 0.5f, &m));
    if (m) {
        const float *f = m->data;
        CHECK(f[0] == 1.5f && f[1] == 3.0f && f[2] == 2.0f && f[3] == 4.0f);
    }
    ot_tensor_free(m);
    m = NULL;
    CHECK_OK(ot_lora_merge(w2, 0, a2, b2, 0.5f, &m));
    if (m) {
        const float *f = m->data;
        CHECK(f[0] == 1.5f && f[1] == 2.0f && f[2] == 3.0f && f[3] == 4.0f);
    }
    ot_tensor_free(m);
    m = NULL;

    /* Errors: wrong in-dimension, wrong rank agreement, non-float W, 1-D W. */
    CHECK(ot_lora_merge(w, 0, a, b, 1.0f, &m) == OT_E_SHAPE && !m); /* W [6,4] as [in,out]: A must be [r, 6] */
    CHECK(strstr(ot_last_error(), "[2, 4]") != NULL);
    ot_tensor *a3 = rand_tensor(OT_F32, 3, 4, 1);
    CHECK(ot_lora_merge(w, 1, a3, b, 1.0f, &m) == OT_E_SHAPE);
    int64_t d6[1] = {6};
    ot_tensor *wi, *w1;
    CHECK_OK(ot_tensor_new(&wi, OT_I64, 2, w->dims));
    CHECK_OK(ot_tensor_new(&w1, OT_F32, 1, d6));
    CHECK(ot_lora_merge(wi, 1, a, b, 1.0f, &m) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "int64") != NULL);
    CHECK(ot_lora_merge(w1, 1, a, b, 1.0f, &m) == OT_E_SHAPE);
    ot_tensor *tl[] = {w, a, b, a0, b0, w2, a2, b2, a3, wi, w1};
    for (size_t i = 0; i < sizeof tl / sizeof tl[0]; i++) ot_tensor_free(tl[i]);
}

/* ---- PEFT ---- */

static const char *peft_modules[3] = {"transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc", "transformer.h.1.attn.c_proj"};
static const int peft_in[3] = {64, 64, 64}, peft_out[3] = {192, 256, 64};

static void make_adapters(ot_peft_adapter *ad, ot_tensor **own, int r) {
    for (int i = 0; i < 3; i++) {
        own[2 * i] = rand_tensor(OT_F32, r, peft_in[i], 0.5);
        own[2 * i + 1] = rand_tensor(OT_F32, peft_out[i], r, 0.5);
        ad[i].module = peft_modules[i];
        ad[i].a = own[2 * i];
        ad[i].b = own[2 * i + 1];
    }
}

static cJSON *read_json(const char *path) {
    ot_mapped_file f;
    if (ot_mapped_open(&f, path) != OT_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(f.data, f.size);
    ot_mapped_close(&f);
    return j;
}

static void test_peft_roundtrip(void) {
    ot_peft_adapter ad[3];
    ot_tensor *own[6];
    make_adapters(ad, own, 4);
    const char *targets[3] = {"c_attn", "c_fc", "c_proj"};
    ot_peft_config cfg = {.r = 4, .alpha = 8.0f, .dropout = 0.05f, .rslora = 1, .target_modules = targets, .n_targets = 3,
                          .base_model = "gpt2-tiny", .task_type = "CAUSAL_LM"};
    char dir[512], p[600];
    path_in(dir, sizeof dir, "adapter");
    CHECK_OK(ot_export_peft(dir, ad, 3, &cfg));
    CHECK(count_named(tmpdir, ".tmp.") == 0);

    /* The file as PEFT expects it, read with the safetensors reader directly. */
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    ot_safetensors *st = NULL;
    CHECK_OK(ot_safetensors_open(p, &st));
    if (st) {
        CHECK(ot_safetensors_count(st) == 6);
        const ot_tensor *ta = ot_safetensors_find(st, "base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight");
        const ot_tensor *tb = ot_safetensors_find(st, "base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight");
        CHECK(ta && ta->dtype == OT_F32 && ta->ndim == 2 && ta->dims[0] == 4 && ta->dims[1] == 64);
        CHECK(tb && tb->ndim == 2 && tb->dims[0] == 256 && tb->dims[1] == 4);
        CHECK(ta && same_bytes(ta, own[2]));
        ot_safetensors_close(st);
    }
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    cJSON *j = read_json(p);
    CHECK(j != NULL);
    if (j) {
        const cJSON *v;
        CHECK((v = cJSON_GetObjectItem(j, "peft_type")) && cJSON_IsString(v) && !strcmp(v->valuestring, "LORA"));
        CHECK((v = cJSON_GetObjectItem(j, "r")) && cJSON_IsNumber(v) && v->valuedouble == 4);
        CHECK((v = cJSON_GetObjectItem(j, "lora_alpha")) && v->valuedouble == 8);
        CHECK((v = cJSON_GetObjectItem(j, "lora_dropout")) && v->valuedouble == 0.05); /* the decimal, not (double)0.05f */
        CHECK((v = cJSON_GetObjectItem(j, "bias")) && !strcmp(v->valuestring, "none"));
        CHECK((v = cJSON_GetObjectItem(j, "use_rslora")) && cJSON_IsTrue(v));
        CHECK((v = cJSON_GetObjectItem(j, "fan_in_fan_out")) && cJSON_IsFalse(v));
        CHECK((v = cJSON_GetObjectItem(j, "task_type")) && !strcmp(v->valuestring, "CAUSAL_LM"));
        CHECK((v = cJSON_GetObjectItem(j, "base_model_name_or_path")) && !strcmp(v->valuestring, "gpt2-tiny"));
        CHECK((v = cJSON_GetObjectItem(j, "target_modules")) && cJSON_GetArraySize(v) == 3 &&
              !strcmp(cJSON_GetArrayItem(v, 1)->valuestring, "c_fc"));
        cJSON_Delete(j);
    }

    ot_peft *pf = NULL;
    CHECK_OK(ot_peft_read(dir, &pf));
    if (pf) {
        CHECK(pf->n == 3 && pf->r == 4 && pf->alpha == 8.0f && pf->rslora == 1);
        int found = 0;
        for (int i = 0; i < pf->n; i++)
            for (int k = 0; k < 3; k++)
                if (!strcmp(pf->adapters[i].module, peft_modules[k]))
                    found += same_bytes(pf->adapters[i].a, own[2 * k]) && same_bytes(pf->adapters[i].b, own[2 * k + 1]);
        CHECK(found == 3);
        ot_peft_free(pf);
    }

    /* Exporting again replaces the previous adapter (new values read back). */
    ot_tensor *old_a = own[0];
    own[0] = rand_tensor(OT_F32, 4, 64, 0.5);
    ad[0].a = own[0];
    cfg.rslora = 0;
    cfg.target_modules = (const char *const[]){"all-linear"};
    cfg.n_targets = 1;
    cfg.task_type = NULL;
    CHECK_OK(ot_export_peft(dir, ad, 3, &cfg));
    CHECK(count_named(tmpdir, "adapter.") == 0); /* neither .tmp.<pid> nor .old.<pid> left */
    pf = NULL;
    CHECK_OK(ot_peft_read(dir, &pf));
    if (pf) {
        CHECK(pf->rslora == 0);
        for (int i = 0; i < pf->n; i++)
            if (!strcmp(pf->adapters[i].module, peft_modules[0])) CHECK(same_bytes(pf->adapters[i].a, own[0]));
        ot_peft_free(pf);
    }
    j = read_json(p);
    if (j) {
        const cJSON *v = cJSON_GetObjectItem(j, "target_modules");
        CHECK(cJSON_IsString(v) && !strcmp(v->valuestring, "all-linear"));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "task_type")));
        cJSON_Delete(j);
    }

    /* A folder holding something else is not replaced (and the other file survives). */
    char foreign[700];
    snprintf(foreign, sizeof foreign, "%s/notes.txt", dir);
    CHECK_OK(ot_write_file_atomic(foreign, "keep", 4));
    CHECK(ot_export_peft(dir, ad, 3, &cfg) != OT_OK);
    CHECK(strstr(ot_last_error(), "notes.txt") != NULL);
    CHECK(file_exists(foreign) && count_named(tmpdir, "adapter.") == 0);

    /* Bad adapters and an unwritable destination. */
    cfg.r = 5;
    CHECK(ot_export_peft(dir, ad, 3, &cfg) == OT_E_SHAPE);
    CHECK(strstr(ot_last_error(), peft_modules[0]) != NULL);
    cfg.r = 4;
    ot_peft_adapter dup[2] = {ad[0], ad[0]};
    CHECK(ot_export_peft(dir, dup, 2, &cfg) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "twice") != NULL);
    char bad_dir[600];
    path_in(bad_dir, sizeof bad_dir, "missing/parent/adapter");
    CHECK(ot_export_peft(bad_dir, ad, 3, &cfg) == OT_E_IO);
    CHECK(strstr(ot_last_error(), "missing/parent/adapter") != NULL);

    ot_tensor_free(old_a);
    for (int i = 0; i < 6; i++) ot_tensor_free(own[i]);
}

/* Writes an adapter folder by hand: safetensors with the given keys, and `config` JSON. */
static void write_adapter(const char *dir, const ot_named_tensor *t, int n, const char *config) {
    char p[600];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    CHECK_OK(ot_safetensors_write(p, t, n, NULL, 0));
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    CHECK_OK(ot_write_file_atomic(p, config, strlen(config)));
}

static void test_peft_read_variants(void) {
    char dir[512];
    path_in(dir, sizeof dir, "variants");
    /* No prefix, adapter name ".default", f16 weights, no use_rslora (PEFT's older files). */
    ot_tensor *a = rand_tensor(OT_F16, 2, 8, 1.0), *b = rand_tensor(OT_F16, 6, 2, 1.0);
    ot_named_tensor t[2] = {{"model.layers.0.self_attn.q_proj.lora_A.default.weight", a},
                            {"model.layers.0.self_attn.q_proj.lora_B.default.weight", b}};
    write_adapter(dir, t, 2, "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 16}");
    ot_peft *pf = NULL;
    CHECK_OK(ot_peft_read(dir, &pf));
    if (pf) {
        CHECK(pf->n == 1 && pf->r == 2 && pf->alpha == 16.0f && pf->rslora == 0);
        CHECK(!strcmp(pf->adapters[0].module, "model.layers.0.self_attn.q_proj"));
        const ot_tensor *ra = pf->adapters[0].a;
        CHECK(ra->dtype == OT_F32 && ra->dims[0] == 2 && ra->dims[1] == 8);
        int same = 1;
        for (int i = 0; i < 16; i++) same &= ((const float *)ra->data)[i] == ot_f16_to_f32(((const uint16_t *)a->data)[i]);
        CHECK(same);
        ot_peft_free(pf);
    }
    /* Prefix and adapter name together. */
    t[0].name = "base_model.model.q.lora_A.default.weight";
    t[1].name = "base_model.model.q.lora_B.default.weight";
    write_adapter(dir, t, 2, "{\"r\": 2, \"lora_alpha\": 4, \"use_rslora\": true}");
    pf = NULL;
    CHECK_OK(ot_peft_read(dir, &pf));
    if (pf) {
        CHECK(pf->n == 1 && !strcmp(pf->adapters[0].module, "q") && pf->rslora == 1 && pf->alpha == 4.0f);
        ot_peft_free(pf);
    }

    /* Malformed: a missing lora_B, an embedding adapter, a rank that disagrees with r,
     * per-module ranks, two adapter names, no config. */
    t[1].name = "base_model.model.k.lora_B.default.weight";
    write_adapter(dir, t, 2, "{\"r\": 2}");
    CHECK(ot_peft_read(dir, &pf) == OT_E_FORMAT && !pf);
    CHECK(strstr(ot_last_error(), "'q'") != NULL || strstr(ot_last_error(), "'k'") != NULL);
    t[1].name = "base_model.model.q.lora_embedding_B.default";
    write_adapter(dir, t, 2, "{\"r\": 2}");
    CHECK(ot_peft_read(dir, &pf) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "lora_embedding_B") != NULL);
    t[1].name = "base_model.model.q.lora_B.default.weight";
    write_adapter(dir, t, 2, "{\"r\": 3}");
    CHECK(ot_peft_read(dir, &pf) == OT_E_SHAPE);
    write_adapter(dir, t, 2, "{\"r\": 2, \"rank_pattern\": {\"q\": 4}}");
    CHECK(ot_peft_read(dir, &pf) == OT_E_UNSUPPORTED);
    CHECK(strstr(ot_last_error(), "rank_pattern") != NULL);
    write_adapter(dir, t, 2, "{\"r\": 2, \"peft_type\": \"IA3\"}");
    CHECK(ot_peft_read(dir, &pf) == OT_E_UNSUPPORTED);
    t[1].name = "base_model.model.q.lora_B.other.weight";
    write_adapter(dir, t, 2, "{\"r\": 2}");
    CHECK(ot_peft_read(dir, &pf) == OT_E_UNSUPPORTED);
    write_adapter(dir, t, 2, "[1, 2]");
    CHECK(ot_peft_read(dir, &pf) == OT_E_FORMAT);
    char nodir[600];
    path_in(nodir, sizeof nodir, "no_such_adapter");
    CHECK(ot_peft_read(nodir, &pf) != OT_OK && !pf);
    CHECK(strstr(ot_last_error(), "no_such_adapter") != NULL);
    ot_tensor_free(a);
    ot_tensor_free(b);
}

/* ---- ONNX ---- */

static void test_onnx_mlp_gemm(void) {
    char src[4200], dst[600];
    snprintf(src, sizeof src, "%s/mlp_gemm.onnx", models_dir);
    path_in(dst, sizeof dst, "mlp_merged.onnx");
    ot_graph *g = NULL, *h = NULL;
    CHECK_OK(ot_onnx_load(src, &g));
    if (!g) return;
    const ot_tensor *w1 = init_of(g, "fc1.weight"), *w3 = init_of(g, "fc3.weight");
    CHECK(w1 && w1->dims[0] == 32 && w1->dims[1] == 16); /* Gemm transB=1: [out, in] */
    ot_tensor *a = rand_tensor(OT_F32, 4, 16, 0.3), *b = rand_tensor(OT_F32, 32, 4, 0.3), *m1 = NULL, *m3 = NULL;
    ot_tensor *a3 = rand_tensor(OT_F32, 4, 32, 0.3), *b3 = rand_tensor(OT_F32, 4, 4, 0.3);
    CHECK_OK(ot_lora_merge(w1, 1, a, b, 2.0f, &m1));
    CHECK_OK(ot_lora_merge(w3, 1, a3, b3, 0.5f, &m3));
    ot_named_tensor up[2] = {{"fc1.weight", m1}, {"fc3.weight", m3}};
    CHECK_OK(ot_export_onnx(src, up, 2, dst));
    CHECK(!file_exists(dst) || count_named(tmpdir, ".tmp.") == 0);
    char data[700];
    snprintf(data, sizeof data, "%s.data", dst);
    CHECK(!file_exists(data)); /* an inline source stays inline */
    CHECK_OK(ot_onnx_load(dst, &h));
    if (h) {
        check_export(g, h, up, 2);
        CHECK(!same_bytes(init_of(h, "fc1.weight"), w1)); /* the update really changed something */
        ot_graph_free(h);
    }
    /* Metadata and opsets carried over. */
    Onnx__ModelProto *ps = read_proto(src), *pd = read_proto(dst);
    CHECK(ps && pd);
    if (ps && pd) {
        CHECK(ps->ir_version == pd->ir_version && ps->n_opset_import == pd->n_opset_import &&
              pd->opset_import[0]->version == ps->opset_import[0]->version);
        CHECK(!strcmp(ps->producer_name ? ps->producer_name : "", pd->producer_name ? pd->producer_name : ""));
        const Onnx__TensorProto *t = proto_init(pd, "fc1.weight");
        CHECK(t && t->has_raw_data && t->n_float_data == 0 && !t->has_data_location);
    }
    if (ps) onnx__model_proto__free_unpacked(ps, NULL);
    if (pd) onnx__model_proto__free_unpacked(pd, NULL);
    /* No updates: the file comes back byte for byte (protobuf-c packs in field-number order,
     * as the exporter that wrote it did). */
    char same[600];
    path_in(same, sizeof same, "mlp_same.onnx");
    CHECK_OK(ot_export_onnx(src, NULL, 0, same));
    ot_mapped_file fa, fb;
    if (ot_mapped_open(&fa, src) == OT_OK) {
        if (ot_mapped_open(&fb, same) == OT_OK) {
            CHECK(fa.size == fb.size && !memcmp(fa.data, fb.data, fa.size));
            ot_mapped_close(&fb);
        }
        ot_mapped_close(&fa);
    }
    ot_tensor *tl[] = {a, b, m1, m3, a3, b3};
    for (size_t i = 0; i < sizeof tl / sizeof tl[0]; i++) ot_tensor_free(tl[i]);
    ot_graph_free(g);
}

static void test_onnx_gpt2(void) {
    char src[4200], dst[600];
    snprintf(src, sizeof src, "%s/gpt2_tiny.onnx", models_dir);
    path_in(dst, sizeof dst, "gpt2_merged.onnx");
    ot_graph *g = NULL, *h = NULL;
    CHECK_OK(ot_onnx_load(src, &g));
    if (!g) return;
    /* MatMul weights as torch.onnx stores a Linear: [in, out]. */
    const ot_tensor *w = init_of(g, "onnx::MatMul_296"), *wfc = init_of(g, "onnx::MatMul_309");
    CHECK(w && w->dims[0] == 64 && w->dims[1] == 192 && wfc && wfc->dims[1] == 256);
    ot_tensor *a = rand_tensor(OT_F32, 8, 64, 0.2), *b = rand_tensor(OT_F32, 192, 8, 0.2), *m = NULL;
    CHECK_OK(ot_lora_merge(w, 0, a, b, 2.0f, &m));
    /* An f64 update of an f32 initializer is rounded to f32. */
    ot_tensor *d64 = rand_tensor(OT_F64, 64, 256, 1.0), *d32 = NULL;
    for (int i = 0; i < 64 * 256; i++) ((double *)d64->data)[i] += 1e-9 * (i % 7); /* not representable in f32 */
    CHECK_OK(ot_tensor_new(&d32, OT_F32, 2, d64->dims));
    ot_convert(d32->data, OT_F32, d64->data, OT_F64, 64 * 256);
    ot_named_tensor up[2] = {{"onnx::MatMul_296", m}, {"onnx::MatMul_309", d64}};
    ot_named_tensor expect[2] = {{"onnx::MatMul_296", m}, {"onnx::MatMul_309", d32}};
    CHECK_OK(ot_export_onnx(src, up, 2, dst));
    CHECK_OK(ot_onnx_load(dst, &h));
    if (h) {
        check_export(g, h, expect, 2);
        ot_graph_free(h);
    }

    /* Errors name the thing, and leave no output or temporary behind. */
    char bad[600];
    path_in(bad, sizeof bad, "gpt2_bad.onnx");
    ot_named_tensor nope = {"transformer.h.9.attn.c_attn.weight", m};
    CHECK(ot_export_onnx(src, &nope, 1, bad) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "transformer.h.9.attn.c_attn.weight") != NULL);
    ot_named_tensor wrong_shape = {"onnx::MatMul_308", m};
    CHECK(ot_export_onnx(src, &wrong_shape, 1, bad) == OT_E_SHAPE);
    CHECK(strstr(ot_last_error(), "onnx::MatMul_308") && strstr(ot_last_error(), "[64, 192]") &&
          strstr(ot_last_error(), "[64, 64]"));
    ot_tensor *ints = NULL;
    CHECK_OK(ot_tensor_new(&ints, OT_I64, 2, w->dims));
    ot_named_tensor wrong_type = {"onnx::MatMul_296", ints};
    CHECK(ot_export_onnx(src, &wrong_type, 1, bad) == OT_E_SHAPE);
    CHECK(strstr(ot_last_error(), "int64") != NULL);
    ot_named_tensor twice[2] = {{"onnx::MatMul_296", m}, {"onnx::MatMul_296", m}};
    CHECK(ot_export_onnx(src, twice, 2, bad) == OT_E_INVALID);
    CHECK(!file_exists(bad) && count_named(tmpdir, ".tmp.") == 0);
    char unwritable[700];
    path_in(unwritable, sizeof unwritable, "no/such/dir/out.onnx");
    CHECK(ot_export_onnx(src, up, 1, unwritable) == OT_E_IO);
    CHECK(strstr(ot_last_error(), "no/such/dir/out.onnx") != NULL);
    char not_onnx[600];
    path_in(not_onnx, sizeof not_onnx, "garbage.onnx");
    CHECK_OK(ot_write_file_atomic(not_onnx, "\xff\xff\xff\xff", 4));
    CHECK(ot_export_onnx(not_onnx, NULL, 0, bad) == OT_E_FORMAT);
    CHECK(strstr(ot_last_error(), "garbage.onnx") != NULL);

    ot_tensor *tl[] = {a, b, m, d64, d32, ints};
    for (size_t i = 0; i < sizeof tl / sizeof tl[0]; i++) ot_tensor_free(tl[i]);
    ot_graph_free(g);
}

/* A model built here: y = (x + w) + (k + h16 cast) with w and k in float_data, h16 an f16
 * initializer in int32_data, and an unknown top-level field (number 1000) appended. */
static int build_typed_model(const char *path) {
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *ops[1] = {&op};
    op.has_version = 1, op.version = 17, op.domain = "";
    mp.has_ir_version = 1, mp.ir_version = 8;
    mp.producer_name = "test_export";
    mp.n_opset_import = 1, mp.opset_import = ops;
    mp.graph = &gp;
    gp.name = "typed";

    float wv[4] = {1, 2, 3, 4}, kv[4] = {-1, -2, -3, -4};
    int32_t hv[4];
    for (int i = 0; i < 4; i++) hv[i] = ot_f32_to_f16(0.5f * (float)i);
    int64_t dims[1] = {4};
    Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT, k = ONNX__TENSOR_PROTO__INIT, h = ONNX__TENSOR_PROTO__INIT;
    Onnx__TensorProto *inits[3] = {&w, &k, &h};
    w.name = "w", k.name = "k", h.name = "h16";
    w.has_data_type = k.has_data_type = h.has_data_type = 1;
    w.data_type = k.data_type = OT_F32;
    h.data_type = OT_F16;
    w.n_dims = k.n_dims = h.n_dims = 1;
    w.dims = k.dims = h.dims = dims;
    w.n_float_data = 4, w.float_data = wv;
    k.n_float_data = 4, k.float_data = kv;
    h.n_int32_data = 4, h.int32_data = hv;
    gp.n_initializer = 3, gp.initializer = inits;

    Onnx__TensorShapeProto__Dimension dim = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    Onnx__TensorShapeProto__Dimension *dimp[1] = {&dim};
    dim.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, dim.dim_value = 4;
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 1, shape.dim = dimp;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = 1, tt.elem_type = OT_F32, tt.shape = &shape;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, type.tensor_type = &tt;
    Onnx__ValueInfoProto x = ONNX__VALUE_INFO_PROTO__INIT, y = ONNX__VALUE_INFO_PROTO__INIT;
    x.name = "x", y.name = "y", x.type = y.type = &type;
    Onnx__ValueInfoProto *ins[1] = {&x}, *outs[1] = {&y};
    gp.n_input = 1, gp.input = ins, gp.n_output = 1, gp.output = outs;

    Onnx__AttributeProto to = ONNX__ATTRIBUTE_PROTO__INIT;
    Onnx__AttributeProto *attrs[1] = {&to};
    to.name = "to", to.has_type = 1, to.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, to.has_i = 1, to.i = OT_F32;
    char *in_cast[1] = {"h16"}, *out_cast[1] = {"h32"};
    char *in_a1[2] = {"x", "w"}, *out_a1[1] = {"t1"}, *in_a2[2] = {"k", "h32"}, *out_a2[1] = {"t2"};
    char *in_a3[2] = {"t1", "t2"}, *out_a3[1] = {"y"};
    Onnx__NodeProto n0 = ONNX__NODE_PROTO__INIT, n1 = ONNX__NODE_PROTO__INIT, n2 = ONNX__NODE_PROTO__INIT,
                    n3 = ONNX__NODE_PROTO__INIT;
    n0.op_type = "Cast", n0.name = "cast", n0.n_input = 1, n0.input = in_cast, n0.n_output = 1, n0.output = out_cast;
    n0.n_attribute = 1, n0.attribute = attrs;
    n1.op_type = n2.op_type = n3.op_type = "Add";
    n1.name = "add1", n2.name = "add2", n3.name = "add3";
    n1.n_input = n2.n_input = n3.n_input = 2;
    n1.n_output = n2.n_output = n3.n_output = 1;
    n1.input = in_a1, n1.output = out_a1, n2.input = in_a2, n2.output = out_a2, n3.input = in_a3, n3.output = out_a3;
    Onnx__NodeProto *nodes[4] = {&n0, &n1, &n2, &n3};
    gp.n_node = 4, gp.node = nodes;

    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(n + 8);
    if (!buf) return -1;
    onnx__model_proto__pack(&mp, buf);
    /* field 1000, wire type varint: tag (1000 << 3) = 8000 = 0xc0 0x3e, value 7 */
    buf[n] = 0xc0, buf[n + 1] = 0x3e, buf[n + 2] = 7;
    ot_status st = ot_write_file_atomic(path, buf, n + 3);
    free(buf);
    return st == OT_OK ? 0 : -1;
}

static void test_onnx_typed_fields(void) {
    char src[600], dst[600];
    path_in(src, sizeof src, "typed.onnx");
    path_in(dst, sizeof dst, "typed_out.onnx");
    CHECK(build_typed_model(src) == 0);
    int64_t d4[1] = {4};
    ot_tensor *nw = NULL, *nh = NULL;
    CHECK_OK(ot_tensor_new(&nw, OT_F32, 1, d4));
    CHECK_OK(ot_tensor_new(&nh, OT_F32, 1, d4));
    for (int i = 0; i < 4; i++) ((float *)nw->data)[i] = 10.0f + (float)i, ((float *)nh->data)[i] = 1.0f / 3.0f + (float)i;
    ot_named_tensor up[2] = {{"w", nw}, {"h16", nh}};
    CHECK_OK(ot_export_onnx(src, up, 2, dst));
    Onnx__ModelProto *pd = read_proto(dst);
    CHECK(pd != NULL);
    if (pd) {
        CHECK(pd->base.n_unknown_fields == 1); /* carried over */
        const Onnx__TensorProto *w = proto_init(pd, "w"), *k = proto_init(pd, "k"), *h = proto_init(pd, "h16");
        CHECK(w && w->has_raw_data && w->raw_data.len == 16 && w->n_float_data == 0);
        CHECK(w && w->raw_data.len == 16 && !memcmp(w->raw_data.data, nw->data, 16));
        CHECK(k && !k->has_raw_data && k->n_float_data == 4 && k->float_data[3] == -4.0f); /* untouched encoding */
        CHECK(h && h->data_type == OT_F16 && h->has_raw_data && h->raw_data.len == 8 && h->n_int32_data == 0);
        if (h && h->raw_data.len == 8) {
            int ok = 1;
            for (int i = 0; i < 4; i++) {
                uint16_t v;
                memcpy(&v, h->raw_data.data + 2 * i, 2);
                ok &= v == ot_f32_to_f16(1.0f / 3.0f + (float)i);
            }
            CHECK(ok);
        }
        CHECK(pd->graph->n_node == 4 && !strcmp(pd->graph->node[0]->op_type, "Cast") && pd->graph->node[0]->n_attribute == 1);
        onnx__model_proto__free_unpacked(pd, NULL);
    }
    ot_graph *g = NULL;
    CHECK_OK(ot_onnx_load(dst, &g)); /* and the importer accepts it */
    ot_graph_free(g);

    /* Exporting over the source itself is atomic and allowed for inline models. */
    CHECK_OK(ot_export_onnx(dst, up, 1, dst));
    ot_tensor_free(nw);
    ot_tensor_free(nh);
}

static void test_onnx_external(void) {
    char src[4200], ext[600], ext_data[700], out[600], out_data[700], sub[600], sub_out[700];
    snprintf(src, sizeof src, "%s/mlp_gemm.onnx", models_dir);
    path_in(ext, sizeof ext, "mlp_ext.onnx");
    snprintf(ext_data, sizeof ext_data, "%s.data", ext);
    /* The "over the limit" path with a 1-byte limit: fc1.weight (2 KB) and fc2.weight (4 KB)
     * go external; fc3.weight (512 B) and the biases stay inline. Yet still over the limit:
     * that is an error, and no output appears. */
    CHECK(ot_export_onnx_limit(src, NULL, 0, ext, 1) == OT_E_UNSUPPORTED);
    CHECK(!file_exists(ext) && !file_exists(ext_data) && count_named(tmpdir, ".tmp.") == 0);
    Onnx__ModelProto *ps = read_proto(src);
    uint64_t limit = ps ? onnx__model_proto__get_packed_size(ps) - 2048 : 1; /* forces externalising */
    if (ps) onnx__model_proto__free_unpacked(ps, NULL);
    CHECK_OK(ot_export_onnx_limit(src, NULL, 0, ext, limit));
    CHECK(file_exists(ext_data));
    Onnx__ModelProto *pe = read_proto(ext);
    if (pe) {
        const Onnx__TensorProto *f1 = proto_init(pe, "fc1.weight"), *f2 = proto_init(pe, "fc2.weight"),
                                *f3 = proto_init(pe, "fc3.weight");
        CHECK(f1 && f1->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL && !f1->has_raw_data);
        CHECK(f2 && f2->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL);
        CHECK(f3 && !f3->has_data_location && f3->has_raw_data);
        CHECK(f1 && ext_key(f1, "location") && !strcmp(ext_key(f1, "location"), "mlp_ext.onnx.data"));
        CHECK(f2 && ext_key(f2, "offset") && atoll(ext_key(f2, "offset")) % 64 == 0 && atoll(ext_key(f2, "offset")) >= 2048);
        CHECK(f2 && ext_key(f2, "length") && !strcmp(ext_key(f2, "length"), "4096"));
        onnx__model_proto__free_unpacked(pe, NULL);
    }
    ot_graph *g = NULL, *ge = NULL, *go = NULL;
    CHECK_OK(ot_onnx_load(src, &g));
    CHECK_OK(ot_onnx_load(ext, &ge));
    if (g && ge) check_export(g, ge, NULL, 0);

    /* An external source stays external; its data file is not touched. */
    ot_mapped_file before;
    CHECK_OK(ot_mapped_open(&before, ext_data));
    unsigned char *saved = malloc(before.size);
    if (saved) memcpy(saved, before.data, before.size);
    size_t saved_size = before.size;
    ot_mapped_close(&before);
    path_in(out, sizeof out, "mlp_ext_out.onnx");
    snprintf(out_data, sizeof out_data, "%s.data", out);
    ot_tensor *w2 = rand_tensor(OT_F32, 32, 32, 1.0), *w3 = rand_tensor(OT_F32, 4, 32, 1.0);
    ot_named_tensor up[2] = {{"fc2.weight", w2}, {"fc3.weight", w3}};
    CHECK_OK(ot_export_onnx(ext, up, 2, out));
    CHECK(file_exists(out_data));
    CHECK_OK(ot_onnx_load(out, &go));
    if (g && go) check_export(g, go, up, 2);
    Onnx__ModelProto *po = read_proto(out);
    if (po) {
        const Onnx__TensorProto *f1 = proto_init(po, "fc1.weight"), *f2 = proto_init(po, "fc2.weight"),
                                *f3 = proto_init(po, "fc3.weight");
        CHECK(f1 && f1->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL && ext_key(f1, "location") &&
              !strcmp(ext_key(f1, "location"), "mlp_ext_out.onnx.data"));
        CHECK(f2 && f2->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL);
        CHECK(f3 && !f3->has_data_location && f3->has_raw_data); /* small and inline in the source */
        onnx__model_proto__free_unpacked(po, NULL);
    }
    ot_mapped_file after;
    CHECK_OK(ot_mapped_open(&after, ext_data));
    CHECK(saved && after.size == saved_size && !memcmp(after.data, saved, saved_size));
    ot_mapped_close(&after);

    /* The destination in another folder: the data file goes beside it. */
    path_in(sub, sizeof sub, "sub");
    mkdir(sub, 0755);
    snprintf(sub_out, sizeof sub_out, "%s/m.onnx", sub);
    CHECK_OK(ot_export_onnx(ext, up, 1, sub_out));
    ot_graph *gs = NULL;
    CHECK_OK(ot_onnx_load(sub_out, &gs));
    if (g && gs) check_export(g, gs, up, 1);
    ot_graph_free(gs);
    CHECK(count_named(sub, "m.onnx.data") == 1);

    /* Exporting an external model over itself would replace its data file: refused, and the
     * source still loads with its old values. */
    CHECK(ot_export_onnx(ext, up, 2, ext) == OT_E_INVALID);
    CHECK(strstr(ot_last_error(), "mlp_ext.onnx.data") != NULL);
    CHECK(ot_export_onnx(ext, up, 2, ext_data) == OT_E_INVALID); /* dst = the data file itself */
    ot_graph *again = NULL;
    CHECK_OK(ot_onnx_load(ext, &again));
    if (g && again) check_export(g, again, NULL, 0);
    ot_graph_free(again);
    CHECK(count_named(tmpdir, ".tmp.") == 0);

    free(saved);
    ot_tensor_free(w2);
    ot_tensor_free(w3);
    ot_graph_free(g);
    ot_graph_free(ge);
    ot_graph_free(go);
}

int main(void) {
    ot_test_mkdtemp(tmpdir, sizeof tmpdir, "ot_test_export_");
    OT_RUN(test_merge);
    OT_RUN(test_merge_edges);
    OT_RUN(test_peft_roundtrip);
    OT_RUN(test_peft_read_variants);
    OT_RUN(test_onnx_mlp_gemm);
    OT_RUN(test_onnx_gpt2);
    OT_RUN(test_onnx_typed_fields);
    OT_RUN(test_onnx_external);
    ot_test_rmtree(tmpdir);
    return OT_TEST_EXIT();
}
