/* onnx_write_util.h — the pieces both ONNX writers share: onnx_writer.c (rewrites a source
 * .onnx with new weights) and onnx_graph_writer.c (writes a model from the graph IR).
 *
 * An ot_onnx_ext_file collects the tensors whose bytes go to "<dst>.data" beside the model
 * (each at a 64-byte aligned offset, TensorProto pointed at it with location/offset/length
 * entries); ot_onnx_write_files then writes the data file and the packed model under
 * temporary names, fsyncs, and renames them into place (data first, then the model), so a
 * reader never sees a model whose data is missing and a failure leaves nothing behind.
 * Payloads are borrowed, never copied: they must outlive the write. */
#ifndef OT_EXPORTER_ONNX_WRITE_UTIL_H
#define OT_EXPORTER_ONNX_WRITE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "onnx.pb-c.h"

#define OT_ONNX_EXT_ALIGN 64

/* One tensor whose bytes go to the data file. */
typedef struct ot_onnx_ext_slot {
    Onnx__TensorProto *tp;
    const void *data;
    size_t nbytes;
    uint64_t offset;
    ot_tensor *view; /* owned tensor `data` points into, or NULL */
    char offset_s[24], length_s[24];
    Onnx__StringStringEntryProto ent[3];    /* location, offset, length */
    Onnx__StringStringEntryProto **entries; /* ent, then room for the caller's extra keys */
} ot_onnx_ext_slot;

typedef struct ot_onnx_ext_file {
    char *path;       /* dst + ".data" */
    const char *name; /* its basename: the location written into the model */
    ot_onnx_ext_slot **slots;
    int n, cap;
    uint64_t end; /* bytes used so far */
} ot_onnx_ext_file;

/* Sets up an empty data file for the model `dst`. Free with ot_onnx_ext_free (also on failure). */
ot_status ot_onnx_ext_init(ot_onnx_ext_file *f, const char *dst);
void ot_onnx_ext_free(ot_onnx_ext_file *f);

/* Appends `nbytes` of `data` at the next aligned offset and points `tp` there: its payload
 * fields (raw_data, typed data, location) are cleared, data_location becomes EXTERNAL and
 * external_data holds location/offset/length, with room for `n_extra` more entries the
 * caller may append (tp->external_data[tp->n_external_data++]). `view` (may be NULL) is
 * owned from here on, also when this fails. *out (may be NULL) receives the slot. */
ot_status ot_onnx_ext_add(ot_onnx_ext_file *f, Onnx__TensorProto *tp, const void *data, size_t nbytes, ot_tensor *view,
                          size_t n_extra, ot_onnx_ext_slot **out);

/* Clears every payload field of a TensorProto (not its name, dims or dtype). */
void ot_onnx_clear_payload(Onnx__TensorProto *tp);

/* Writes `model` (which must pack to exactly `size` bytes) to `dst` and, when `ext` holds
 * slots, their bytes to ext->path: temporary names, fsync, rename (data file first), then
 * the directory is fsynced. On failure no temporary file is left behind. */
ot_status ot_onnx_write_files(const ProtobufCMessage *model, size_t size, const char *dst, const ot_onnx_ext_file *ext);

/* 1 when both paths name the same existing file. */
int ot_onnx_same_file(const char *a, const char *b);

#endif
