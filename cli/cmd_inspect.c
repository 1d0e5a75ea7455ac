/* cmd_inspect.c — `onnxtune inspect MODEL [--json]`: inputs and outputs with their
 * (symbolic) shapes, parameter count and bytes by dtype, op histogram, opsets. Reads the
 * model only; runs nothing. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "onnxtune/importer.h"

static const char *inspect_help =
    "usage: onnxtune inspect MODEL [--json]\n"
    "\n"
    "MODEL is an .onnx file, a Hugging Face model directory (config.json + safetensors), or a\n"
    "URL (http(s):// or hf://ORG/NAME[@REV]) fetched into the cache first.\n"
    "\n"
    "Shows a model's inputs and outputs (symbolic dimensions by name), parameter count and\n"
    "bytes by dtype, op histogram and opsets.\n"
    "\n"
    "  --json    print one JSON object instead of text (default: text)\n";

typedef struct {
    const char *op;
    int count;
} op_count;

static int by_count(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    return x->count != y->count ? y->count - x->count : strcmp(x->op, y->op);
}

static cJSON *shape_json(const ot_value *v) {
    if (v->ndim < 0) return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < v->ndim; d++)
        cJSON_AddItemToArray(a, v->dim_param[d] ? cJSON_CreateString(v->dim_param[d])
                                : v->dims[d] >= 0 ? cJSON_CreateNumber((double)v->dims[d])
                                                  : cJSON_CreateNull());
    return a;
}

static void shape_text(const ot_value *v, char *buf, size_t n) {
    if (v->ndim < 0) {
        snprintf(buf, n, "(unknown rank)");
        return;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < v->ndim && k < n; d++) {
        if (v->dim_param[d]) k += (size_t)snprintf(buf + k, n - k, "%s%s", d ? ", " : "", v->dim_param[d]);
        else if (v->dims[d] >= 0) k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)v->dims[d]);
        else k += (size_t)snprintf(buf + k, n - k, "%s?", d ? ", " : "");
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

static cJSON *io_json(const ot_graph *g, const int *idx, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const ot_value *v = &g->values[idx[i]];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", v->name);
        cJSON_AddStringToObject(o, "dtype", ot_dtype_name(v->dtype));
        cJSON_AddItemToObject(o, "shape", shape_json(v));
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

int ot_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(inspect_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return ot_cli_usage("inspect", "unknown option '%s'", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return ot_cli_usage("inspect", "one model at a time (got '%s' and '%s')", path, argv[i]);
        }
    }
    if (!path) return ot_cli_usage("inspect", "missing MODEL");

    ot_graph *g;
    if (ot_model_load(path, &g) != OT_OK) return ot_cli_fail("%s", ot_last_error());

    /* parameters by dtype */
    int64_t count[32] = {0}, bytes[32] = {0}, total_count = 0, total_bytes = 0;
    for (int v = 0; v < g->n_values; v++) {
        const ot_tensor *t = g->values[v].init;
        if (!t) continue;
        int d = (int)t->dtype & 31;
        count[d] += ot_tensor_numel(t);
        bytes[d] += (int64_t)ot_tensor_nbytes(t);
        total_count += ot_tensor_numel(t);
        total_bytes += (int64_t)ot_tensor_nbytes(t);
    }
    /* op histogram */
    op_count *ops = calloc((size_t)g->n_nodes + 1, sizeof *ops);
    int n_ops = 0;
    if (!ops) {
        ot_graph_free(g);
        return ot_cli_fail("out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        int k = 0;
        while (k < n_ops && strcmp(ops[k].op, g->nodes[i].op_type) != 0) k++;
        if (k == n_ops) ops[n_ops++].op = g->nodes[i].op_type;
        ops[k].count++;
    }
    qsort(ops, (size_t)n_ops, sizeof *ops, by_count);

    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", path);
        cJSON_AddNumberToObject(root, "ir_version", (double)g->ir_version);
        cJSON *opsets = cJSON_AddArrayToObject(root, "opsets");
        for (int i = 0; i < g->n_opsets; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "domain", g->opsets[i].domain[0] ? g->opsets[i].domain : "ai.onnx");
            cJSON_AddNumberToObject(o, "version", (double)g->opsets[i].version);
            cJSON_AddItemToArray(opsets, o);
        }
        cJSON_AddItemToObject(root, "inputs", io_json(g, g->inputs, g->n_inputs));
        cJSON_AddItemToObject(root, "outputs", io_json(g, g->outputs, g->n_outputs));
        cJSON *params = cJSON_AddObjectToObject(root, "parameters");
        cJSON_AddNumberToObject(params, "count", (double)total_count);
        cJSON_AddNumberToObject(params, "bytes", (double)total_bytes);
        cJSON *by = cJSON_AddObjectToObject(params, "by_dtype");
        for (int d = 0; d < 32; d++) {
            if (!count[d] && !bytes[d]) continue;
            cJSON *o = cJSON_AddObjectToObject(by, ot_dtype_name((ot_dtype)d));
            cJSON_AddNumberToObject(o, "count", (double)count[d]);
            cJSON_AddNumberToObject(o, "bytes", (double)bytes[d]);
        }
        cJSON_AddNumberToObject(root, "nodes", g->n_nodes);
        cJSON *hist = cJSON_AddObjectToObject(root, "ops");
        for (int k = 0; k < n_ops; k++) cJSON_AddNumberToObject(hist, ops[k].op, ops[k].count);
        char *s = cJSON_Print(root);
        if (s) puts(s);
        free(s);
        cJSON_Delete(root);
    } else {
        char buf[512], b2[64];
        printf("model: %s\n  ir_version %lld, opsets:", path, (long long)g->ir_version);
        for (int i = 0; i < g->n_opsets; i++)
            printf(" %s %lld", g->opsets[i].domain[0] ? g->opsets[i].domain : "ai.onnx", (long long)g->opsets[i].version);
        printf("\ninputs:\n");
        for (int i = 0; i < g->n_inputs; i++) {
            const ot_value *v = &g->values[g->inputs[i]];
            shape_text(v, buf, sizeof buf);
            printf("  %-24s %-9s %s\n", v->name, ot_dtype_name(v->dtype), buf);
        }
        printf("outputs:\n");
        for (int i = 0; i < g->n_outputs; i++) {
            const ot_value *v = &g->values[g->outputs[i]];
            shape_text(v, buf, sizeof buf);
            printf("  %-24s %-9s %s\n", v->name, ot_dtype_name(v->dtype), buf);
        }
        printf("parameters: %lld (%s)\n", (long long)total_count, ot_cli_bytes(b2, sizeof b2, (double)total_bytes));
        for (int d = 0; d < 32; d++)
            if (count[d] || bytes[d])
                printf("  %-9s %lld (%s)\n", ot_dtype_name((ot_dtype)d), (long long)count[d],
                       ot_cli_bytes(b2, sizeof b2, (double)bytes[d]));
        printf("ops (%d nodes):\n", g->n_nodes);
        for (int k = 0; k < n_ops; k++) printf("  %-24s %d\n", ops[k].op, ops[k].count);
    }
    free(ops);
    ot_graph_free(g);
    return 0;
}
