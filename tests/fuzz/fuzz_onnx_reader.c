/* fuzz_onnx_reader.c — libFuzzer target for the ONNX reader: any byte string must either
 * load into a graph or fail with a status; never crash, leak or read out of bounds. Inputs
 * that load are also inspected the way `onnxtune inspect` does, to reach the IR walkers. */
#include <stddef.h>
#include <stdint.h>

#include "onnxtune/importer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ot_graph *g = NULL;
    if (ot_onnx_load_buffer(data, size, "<fuzz>", &g) == OT_OK) {
        int64_t params = 0;
        for (int v = 0; v < g->n_values; v++)
            if (g->values[v].init) params += ot_tensor_numel(g->values[v].init);
        (void)params;
        ot_graph_free(g);
    }
    return 0;
}
