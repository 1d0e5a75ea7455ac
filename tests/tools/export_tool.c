/* export_tool.c — test-only driver of the ONNX exporter for tests/parity/test_export_py.py
 * (the real CLI is `onnxtune export`, which works from checkpoints).
 *
 *   export_tool SRC.onnx DST.onnx [NAME=FILE.npy ...] [--merge NAME=A.npy,B.npy,SCALE,T ...]
 *               [--inline-limit BYTES]
 *   export_tool --from-graph MODEL DST.onnx [NAME=FILE.npy ...] [--weights FILE.safetensors]
 *               [--inline-limit BYTES]
 *
 * NAME=FILE.npy replaces initializer NAME by the array in FILE. --merge replaces it by
 * ot_lora_merge(W, T, A, B, SCALE) where W is the initializer read from SRC and T is 1 when
 * W is [out, in] (Gemm transB=1) and 0 when it is [in, out] (MatMul). --inline-limit caps
 * the packed model size (default: protobuf's 2 GB) to reach the external-data fallback.
 * --from-graph loads MODEL (anything ot_model_load reads) into the graph IR, applies the
 * --weights overlay when given, and writes the graph as a new model (ot_export_graph_onnx)
 * instead of rewriting SRC.
 * Errors go to stderr as "export_tool: <message>" with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "exporter/onnx_graph_writer.h"
#include "exporter/onnx_writer.h"
#include "onnxtune/export.h"
#include "onnxtune/importer.h"

static int fail(void) {
    fprintf(stderr, "export_tool: %s\n", ot_last_error());
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: export_tool SRC.onnx DST.onnx [NAME=FILE.npy ...] [--merge NAME=A.npy,B.npy,SCALE,T ...] "
                    "[--inline-limit BYTES]\n"
                    "       export_tool --from-graph MODEL DST.onnx [NAME=FILE.npy ...] [--weights FILE.safetensors] "
                    "[--inline-limit BYTES]\n");
    return 2;
}

/* NAME=A.npy,B.npy,SCALE,T -> the merged weight; fields split in place. */
static ot_status merge_spec(const ot_graph *g, char *spec, char **name, ot_tensor **out) {
    char *eq = strchr(spec, '=');
    if (!eq) return ot_errorf(OT_E_INVALID, "--merge '%s': expected NAME=A.npy,B.npy,SCALE,T", spec);
    *eq = 0;
    *name = spec;
    char *f[4];
    char *p = eq + 1;
    for (int i = 0; i < 4; i++) {
        f[i] = p;
        p = strchr(p, ',');
        if (i < 3 && !p) return ot_errorf(OT_E_INVALID, "--merge '%s': expected NAME=A.npy,B.npy,SCALE,T", spec);
        if (p) *p++ = 0;
    }
    int idx = ot_graph_find(g, *name);
    if (idx < 0 || !g->values[idx].init) return ot_errorf(OT_E_INVALID, "--merge: no initializer '%s' in the source", *name);
    ot_tensor *a = NULL, *b = NULL;
    ot_status st = ot_npy_read(f[0], &a);
    if (st == OT_OK) st = ot_npy_read(f[1], &b);
    if (st == OT_OK) st = ot_lora_merge(g->values[idx].init, atoi(f[3]), a, b, strtof(f[2], NULL), out);
    ot_tensor_free(a);
    ot_tensor_free(b);
    return st;
}

int main(int argc, char **argv) {
    int from_graph = argc > 1 && !strcmp(argv[1], "--from-graph");
    if (from_graph) argv++, argc--;
    if (argc < 3) return usage();
    const char *src = argv[1], *dst = argv[2], *weights = NULL;
    uint64_t limit = OT_ONNX_INLINE_LIMIT;
    ot_named_tensor *up = calloc((size_t)argc, sizeof *up);
    ot_tensor **own = calloc((size_t)argc, sizeof *own);
    ot_graph *g = NULL;
    int n = 0, rc = 1;
    if (!up || !own) return 1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--inline-limit") && i + 1 < argc) {
            limit = strtoull(argv[++i], NULL, 10);
        } else if (from_graph && !strcmp(argv[i], "--weights") && i + 1 < argc) {
            weights = argv[++i];
        } else if (!from_graph && !strcmp(argv[i], "--merge") && i + 1 < argc) {
            if (!g && ot_onnx_load(src, &g) != OT_OK) goto done;
            char *name = NULL;
            if (merge_spec(g, argv[++i], &name, &own[n]) != OT_OK) goto done;
            up[n].name = name;
            up[n].t = own[n];
            n++;
        } else {
            char *eq = strchr(argv[i], '=');
            if (!eq || argv[i][0] == '-') {
                rc = usage();
                goto done;
            }
            *eq = 0;
            if (ot_npy_read(eq + 1, &own[n]) != OT_OK) goto done;
            up[n].name = argv[i];
            up[n].t = own[n];
            n++;
        }
    }
    if (from_graph) {
        if (ot_model_load(src, &g) != OT_OK) goto done;
        if (weights && ot_weights_overlay(g, weights) != OT_OK) goto done;
        if (ot_export_graph_onnx_limit(g, up, n, dst, limit) != OT_OK) goto done;
    } else if (ot_export_onnx_limit(src, up, n, dst, limit) != OT_OK) {
        goto done;
    }
    printf("exported %d update(s) to %s\n", n, dst);
    rc = 0;
done:
    if (rc == 1) fail();
    for (int i = 0; i < n; i++) ot_tensor_free(own[i]);
    free(own);
    free(up);
    ot_graph_free(g);
    return rc;
}
