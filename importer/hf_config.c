/* hf_config.c — reads a Hugging Face config.json into ot_hf_config (hf_internal.h).
 *
 * Owns the mapping from each model_type's field names (n_embd vs hidden_size, ...) to one
 * struct, the defaults transformers applies when a field is absent, and the checks that keep
 * the builders from ever seeing sizes that do not fit (heads dividing the width, kv heads
 * dividing heads). Only what the builders support is accepted; anything else is refused
 * here with the field named, not discovered later as a wrong graph. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "importer/hf_internal.h"
#include "importer/mapped_file.h"

#define OT_HF_SUPPORTED "gpt2, llama, bert"

typedef struct {
    const cJSON *root;
    const char *path;
} cfg_src;

/* Integer field `key` (or its alternate name `alt`); `dflt` < 0 means required. */
static ot_status get_int(const cfg_src *s, const char *key, const char *alt, int64_t dflt, int64_t *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, key);
    if ((!j || cJSON_IsNull(j)) && alt) j = cJSON_GetObjectItemCaseSensitive(s->root, alt);
    if (!j || cJSON_IsNull(j)) {
        if (dflt < 0) return ot_errorf(OT_E_INVALID, "'%s': missing field \"%s\"", s->path, key);
        *v = dflt;
        return OT_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < 1 || j->valuedouble > 1e12)
        return ot_errorf(OT_E_INVALID, "'%s': field \"%s\" must be a positive integer", s->path, j->string);
    *v = (int64_t)j->valuedouble;
    return OT_OK;
}

static ot_status get_num(const cfg_src *s, const char *key, double dflt, int required, double *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return ot_errorf(OT_E_INVALID, "'%s': missing field \"%s\"", s->path, key);
        *v = dflt;
        return OT_OK;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) || !isfinite(j->valuedouble))
        return ot_errorf(OT_E_INVALID, "'%s': field \"%s\" must be a positive number", s->path, key);
    *v = j->valuedouble;
    return OT_OK;
}

static ot_status get_bool(const cfg_src *s, const char *key, int dflt, int *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, key);
    if (!j || cJSON_IsNull(j)) {
        *v = dflt;
        return OT_OK;
    }
    if (!cJSON_IsBool(j)) return ot_errorf(OT_E_INVALID, "'%s': field \"%s\" must be true or false", s->path, key);
    *v = cJSON_IsTrue(j);
    return OT_OK;
}

static ot_status get_act(const cfg_src *s, const char *key, const char *dflt, ot_hf_act *act) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, key);
    const char *name = dflt;
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsString(j)) return ot_errorf(OT_E_INVALID, "'%s': field \"%s\" must be a string", s->path, key);
        name = j->valuestring;
    }
    static const struct {
        const char *name;
        ot_hf_act act;
    } acts[] = {{"gelu_new", OT_HF_ACT_GELU_TANH}, {"gelu_pytorch_tanh", OT_HF_ACT_GELU_TANH},
                {"gelu_fast", OT_HF_ACT_GELU_TANH}, {"gelu", OT_HF_ACT_GELU_ERF},
                {"silu", OT_HF_ACT_SILU},           {"swish", OT_HF_ACT_SILU},
                {"relu", OT_HF_ACT_RELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(name, acts[i].name) == 0) {
            *act = acts[i].act;
            return OT_OK;
        }
    return ot_errorf(OT_E_UNSUPPORTED,
                     "'%s': field \"%s\" = \"%s\" is not a supported activation (gelu_new, gelu_pytorch_tanh, "
                     "gelu_fast, gelu, silu, swish, relu)",
                     s->path, key, name);
}

/* rope_scaling: null, or {"type": "linear", "factor": f} ("rope_type" in newer configs). */
static ot_status get_rope_scaling(const cfg_src *s, ot_hf_config *c) {
    c->rope_factor = 1.0;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, "rope_scaling");
    if (!j || cJSON_IsNull(j)) return OT_OK;
    if (!cJSON_IsObject(j)) return ot_errorf(OT_E_INVALID, "'%s': field \"rope_scaling\" must be an object or null", s->path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(j, "rope_type");
    if (!cJSON_IsString(t)) return ot_errorf(OT_E_INVALID, "'%s': rope_scaling has no \"type\"", s->path);
    if (strcmp(t->valuestring, "default") == 0) return OT_OK;
    if (strcmp(t->valuestring, "linear") != 0)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': rope_scaling type \"%s\" is not supported (only linear)", s->path,
                         t->valuestring);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "factor");
    if (!cJSON_IsNumber(f) || !(f->valuedouble > 0) || !isfinite(f->valuedouble))
        return ot_errorf(OT_E_INVALID, "'%s': rope_scaling \"factor\" must be a positive number", s->path);
    c->rope_factor = f->valuedouble;
    return OT_OK;
}

static ot_status parse_gpt2(const cfg_src *s, ot_hf_config *c) {
    OT_TRY(get_int(s, "vocab_size", NULL, -1, &c->vocab));
    OT_TRY(get_int(s, "n_embd", "hidden_size", -1, &c->hidden));
    OT_TRY(get_int(s, "n_layer", "num_hidden_layers", -1, &c->layers));
    OT_TRY(get_int(s, "n_head", "num_attention_heads", -1, &c->heads));
    OT_TRY(get_int(s, "n_positions", "max_position_embeddings", -1, &c->max_pos));
    OT_TRY(get_int(s, "n_inner", NULL, 4 * c->hidden, &c->inter));
    OT_TRY(get_num(s, "layer_norm_epsilon", 1e-5, 0, &c->eps));
    OT_TRY(get_act(s, "activation_function", "gelu_new", &c->act));
    OT_TRY(get_bool(s, "tie_word_embeddings", 1, &c->tie));
    /* transformers options that change the math; refuse rather than compute something else */
    int v;
    OT_TRY(get_bool(s, "scale_attn_weights", 1, &v));
    if (!v) return ot_errorf(OT_E_UNSUPPORTED, "'%s': scale_attn_weights=false is not supported", s->path);
    OT_TRY(get_bool(s, "scale_attn_by_inverse_layer_idx", 0, &v));
    if (v) return ot_errorf(OT_E_UNSUPPORTED, "'%s': scale_attn_by_inverse_layer_idx=true is not supported", s->path);
    c->kv_heads = c->heads;
    return OT_OK;
}

static ot_status parse_llama(const cfg_src *s, ot_hf_config *c) {
    OT_TRY(get_int(s, "vocab_size", NULL, -1, &c->vocab));
    OT_TRY(get_int(s, "hidden_size", NULL, -1, &c->hidden));
    OT_TRY(get_int(s, "num_hidden_layers", NULL, -1, &c->layers));
    OT_TRY(get_int(s, "num_attention_heads", NULL, -1, &c->heads));
    OT_TRY(get_int(s, "num_key_value_heads", NULL, c->heads, &c->kv_heads));
    OT_TRY(get_int(s, "intermediate_size", NULL, -1, &c->inter));
    OT_TRY(get_int(s, "max_position_embeddings", NULL, 2048, &c->max_pos));
    OT_TRY(get_num(s, "rms_norm_eps", 1e-6, 0, &c->eps));
    OT_TRY(get_num(s, "rope_theta", 10000.0, 0, &c->rope_theta));
    OT_TRY(get_act(s, "hidden_act", "silu", &c->act));
    OT_TRY(get_bool(s, "tie_word_embeddings", 0, &c->tie));
    OT_TRY(get_rope_scaling(s, c));
    int v;
    OT_TRY(get_bool(s, "attention_bias", 0, &v));
    if (v) return ot_errorf(OT_E_UNSUPPORTED, "'%s': attention_bias=true is not supported", s->path);
    OT_TRY(get_bool(s, "mlp_bias", 0, &v));
    if (v) return ot_errorf(OT_E_UNSUPPORTED, "'%s': mlp_bias=true is not supported", s->path);
    int64_t hd = 0;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->root, "head_dim");
    if (j && !cJSON_IsNull(j)) {
        OT_TRY(get_int(s, "head_dim", NULL, -1, &hd));
        if (hd * c->heads != c->hidden)
            return ot_errorf(OT_E_UNSUPPORTED, "'%s': head_dim %lld != hidden_size / num_attention_heads is not supported",
                             s->path, (long long)hd);
    }
    return OT_OK;
}

static ot_status parse_bert(const cfg_src *s, ot_hf_config *c) {
    OT_TRY(get_int(s, "vocab_size", NULL, -1, &c->vocab));
    OT_TRY(get_int(s, "hidden_size", NULL, -1, &c->hidden));
    OT_TRY(get_int(s, "num_hidden_layers", NULL, -1, &c->layers));
    OT_TRY(get_int(s, "num_attention_heads", NULL, -1, &c->heads));
    OT_TRY(get_int(s, "intermediate_size", NULL, -1, &c->inter));
    OT_TRY(get_int(s, "max_position_embeddings", NULL, 512, &c->max_pos));
    OT_TRY(get_int(s, "type_vocab_size", NULL, 2, &c->type_vocab));
    OT_TRY(get_num(s, "layer_norm_eps", 1e-12, 0, &c->eps));
    OT_TRY(get_act(s, "hidden_act", "gelu", &c->act));
    c->kv_heads = c->heads;
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(s->root, "position_embedding_type");
    if (cJSON_IsString(pe) && strcmp(pe->valuestring, "absolute") != 0)
        return ot_errorf(OT_E_UNSUPPORTED, "'%s': position_embedding_type \"%s\" is not supported (only absolute)", s->path,
                         pe->valuestring);
    if (strcmp(c->architecture, "BertForSequenceClassification") != 0)
        return ot_errorf(OT_E_UNSUPPORTED,
                         "'%s': bert architecture \"%s\" is not supported (only BertForSequenceClassification)", s->path,
                         c->architecture[0] ? c->architecture : "(none given)");
    c->seq_cls = 1;
    /* num_labels is not saved by transformers; it is the size of id2label (default 2) */
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(s->root, "id2label");
    c->num_labels = 2;
    if (id2label && !cJSON_IsNull(id2label)) {
        if (!cJSON_IsObject(id2label)) return ot_errorf(OT_E_INVALID, "'%s': field \"id2label\" must be an object", s->path);
        c->num_labels = cJSON_GetArraySize(id2label);
    }
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(s->root, "num_labels");
    if (nl && !cJSON_IsNull(nl)) OT_TRY(get_int(s, "num_labels", NULL, -1, &c->num_labels));
    if (c->num_labels < 1) return ot_errorf(OT_E_INVALID, "'%s': id2label is empty", s->path);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(s->root, "problem_type");
    if (cJSON_IsString(pt) && strcmp(pt->valuestring, "single_label_classification") != 0 &&
        strcmp(pt->valuestring, "multi_label_classification") != 0 && strcmp(pt->valuestring, "regression") != 0)
        return ot_errorf(OT_E_INVALID, "'%s': unknown problem_type \"%s\"", s->path, pt->valuestring);
    return OT_OK;
}

ot_status ot_hf_config_parse(const char *json, size_t n, const char *path, ot_hf_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root) return ot_errorf(OT_E_FORMAT, "'%s' is not valid JSON", path);
    cfg_src s = {root, path};
    ot_status st = OT_OK;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!cJSON_IsObject(root)) {
        st = ot_errorf(OT_E_FORMAT, "'%s': expected a JSON object", path);
    } else if (!mt) {
        st = ot_errorf(OT_E_INVALID, "'%s': missing field \"model_type\" (supported: " OT_HF_SUPPORTED ")", path);
    } else if (!cJSON_IsString(mt)) {
        st = ot_errorf(OT_E_INVALID, "'%s': field \"model_type\" must be a string", path);
    } else if (ar && !cJSON_IsNull(ar) && (!cJSON_IsArray(ar) || (cJSON_GetArraySize(ar) > 0 && !cJSON_IsString(ar->child)))) {
        st = ot_errorf(OT_E_INVALID, "'%s': field \"architectures\" must be a list of strings", path);
    } else {
        snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
        if (ar && cJSON_IsArray(ar) && ar->child) snprintf(c->architecture, sizeof c->architecture, "%s", ar->child->valuestring);
        c->rope_theta = 10000.0;
        c->rope_factor = 1.0;
        if (strcmp(mt->valuestring, "gpt2") == 0) {
            c->arch = OT_HF_GPT2;
            st = parse_gpt2(&s, c);
        } else if (strcmp(mt->valuestring, "llama") == 0) {
            c->arch = OT_HF_LLAMA;
            st = parse_llama(&s, c);
        } else if (strcmp(mt->valuestring, "bert") == 0) {
            c->arch = OT_HF_BERT;
            st = parse_bert(&s, c);
        } else {
            st = ot_errorf(OT_E_UNSUPPORTED, "'%s': model_type \"%s\" is not supported (supported: " OT_HF_SUPPORTED ")",
                           path, mt->valuestring);
        }
    }
    if (st == OT_OK && c->hidden % c->heads != 0)
        st = ot_errorf(OT_E_INVALID, "'%s': hidden size %lld is not divisible by the %lld attention heads", path,
                       (long long)c->hidden, (long long)c->heads);
    if (st == OT_OK && c->heads % c->kv_heads != 0)
        st = ot_errorf(OT_E_INVALID, "'%s': num_attention_heads %lld is not a multiple of num_key_value_heads %lld", path,
                       (long long)c->heads, (long long)c->kv_heads);
    if (st == OT_OK && c->arch == OT_HF_LLAMA && (c->hidden / c->heads) % 2 != 0)
        st = ot_errorf(OT_E_INVALID, "'%s': rotary embeddings need an even head size, got %lld", path,
                       (long long)(c->hidden / c->heads));
    cJSON_Delete(root);
    return st;
}

ot_status ot_hf_config_read(const char *path, ot_hf_config *c) {
    ot_mapped_file f;
    OT_TRY(ot_mapped_open(&f, path));
    ot_status st = ot_hf_config_parse(f.data ? f.data : "", f.size, path, c);
    ot_mapped_close(&f);
    return st;
}
