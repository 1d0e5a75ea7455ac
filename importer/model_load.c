/* model_load.c — ot_model_load: one entry point for whatever names a model. A URL
 * (http(s)://, hf://) is fetched into the cache first (onnxtune/fetch.h); then an .onnx file
 * goes to the ONNX reader, and a directory or a config.json to the Hugging Face importer.
 * Anything else is refused naming the path and what was expected. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnxtune/fetch.h"
#include "onnxtune/importer.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static ot_status load_local(const char *path, ot_graph **out) {
    struct stat sb;
    if (stat(path, &sb) != 0) return ot_errorf(OT_E_IO, "model '%s' does not exist", path);
    if (S_ISDIR(sb.st_mode) || ends_with(path, "config.json")) return ot_hf_load(path, out);
    if (ends_with(path, ".onnx")) return ot_onnx_load(path, out);
    return ot_errorf(OT_E_INVALID,
                     "model '%s' is neither an .onnx file nor a Hugging Face directory (config.json + safetensors)", path);
}

ot_status ot_model_load(const char *path_or_url, ot_graph **out) {
    *out = NULL;
    if (!path_or_url || !path_or_url[0]) return ot_errorf(OT_E_INVALID, "no model given");
    if (!ot_is_url(path_or_url)) return load_local(path_or_url, out);
    char *local = NULL;
    OT_TRY(ot_fetch_model(path_or_url, NULL, &local));
    ot_status st = load_local(local, out);
    if (st != OT_OK) ot_error_wrap(st, "'%s' (fetched to '%s'): ", path_or_url, local);
    free(local);
    return st;
}
