/* onnx_model.h — an imported ONNX file: the parsed ModelProto plus the external data files
 * its initializers point into. It is the `backing` of the graph made from it, so graph
 * tensors stay valid while the graph lives; the exporter reads the proto to rewrite the
 * original graph. */
#ifndef OT_ONNX_MODEL_H
#define OT_ONNX_MODEL_H

#include "core/graph.h"
#include "importer/mapped_file.h"
#include "onnx.pb-c.h"

/* IR versions and default-domain opsets this build reads. */
#define OT_ONNX_MIN_IR 7
#define OT_ONNX_MIN_OPSET 13
#define OT_ONNX_MAX_OPSET 21

typedef struct ot_onnx_model {
    Onnx__ModelProto *proto;
    char *path; /* the file, or "<memory>" */
    char *dir;  /* folder external data is confined to; NULL refuses external data */
    ot_mapped_file *ext;
    int n_ext;
} ot_onnx_model;

void ot_onnx_model_free(void *model);

/* Converts a TensorProto into a tensor that borrows the proto's or an external file's
 * bytes where it can (raw_data, float_data, mapped external data) and owns a converted copy
 * otherwise. `what` names the tensor for messages. */
ot_status ot_onnx_tensor(ot_onnx_model *m, const Onnx__TensorProto *tp, const char *what, ot_tensor **out);

#endif
