/* hf_infer.c — test-only driver for tests/parity/test_hf_models.py: loads a model through
 * ot_model_load (a Hugging Face directory here), plans it for the given inputs, runs it once
 * and writes every output as OUT_DIR/<name>.npy. Graph inputs not given on the command line
 * are fed as zeros shaped like the first input (token_type_ids, which transformers also
 * defaults to zeros). Until `onnxtune infer` loads through ot_model_load this is the way
 * the parity suite reaches the HF importer.
 *
 *   hf_infer MODEL OUT_DIR NAME=FILE.npy ...
 *
 * Errors go to stderr as "hf_infer: <message>" with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "onnxtune/importer.h"
#include "onnxtune/runtime.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: hf_infer MODEL OUT_DIR NAME=FILE.npy ...\n");
        return 2;
    }
    ot_graph *g = NULL;
    ot_plan *plan = NULL;
    ot_tensor **given = calloc((size_t)argc, sizeof *given);
    const char **given_names = calloc((size_t)argc, sizeof *given_names);
    ot_tensor **zeros = NULL;
    const ot_tensor **feeds = NULL;
    ot_tensor *outs = NULL;
    int n_given = 0, rc = 1;
    ot_status st = given && given_names ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
    for (int i = 3; st == OT_OK && i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            st = ot_errorf(OT_E_INVALID, "argument '%s': expected NAME=FILE.npy", argv[i]);
            break;
        }
        *eq = 0;
        given_names[n_given] = argv[i];
        st = ot_npy_read(eq + 1, &given[n_given]);
        if (st == OT_OK) n_given++;
    }
    if (st == OT_OK) st = ot_model_load(argv[1], &g);
    if (st == OT_OK) {
        zeros = calloc((size_t)g->n_inputs + 1, sizeof *zeros);
        feeds = calloc((size_t)g->n_inputs + 1, sizeof *feeds);
        outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
        if (!zeros || !feeds || !outs) st = ot_errorf(OT_E_NOMEM, "out of memory");
    }
    for (int i = 0; st == OT_OK && i < g->n_inputs; i++) {
        const ot_value *v = &g->values[g->inputs[i]];
        for (int k = 0; k < n_given; k++)
            if (strcmp(given_names[k], v->name) == 0) feeds[i] = given[k];
        if (feeds[i]) continue;
        if (n_given == 0) {
            st = ot_errorf(OT_E_INVALID, "no input given for '%s'", v->name);
            break;
        }
        st = ot_tensor_new(&zeros[i], v->dtype, given[0]->ndim, given[0]->dims);
        feeds[i] = zeros[i];
    }
    if (st == OT_OK) st = ot_plan_create(g, feeds, &plan);
    if (st == OT_OK) st = ot_plan_run(plan, feeds, outs);
    for (int i = 0; st == OT_OK && i < g->n_outputs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", argv[2], g->values[g->outputs[i]].name);
        st = ot_npy_write(path, &outs[i]);
    }
    if (st == OT_OK)
        rc = 0;
    else
        fprintf(stderr, "hf_infer: %s\n", ot_last_error());
    ot_plan_free(plan);
    for (int i = 0; g && zeros && i < g->n_inputs; i++) ot_tensor_free(zeros[i]);
    for (int i = 0; i < n_given; i++) ot_tensor_free(given[i]);
    ot_graph_free(g);
    free(zeros);
    free(feeds);
    free(outs);
    free(given);
    free(given_names);
    return rc;
}
