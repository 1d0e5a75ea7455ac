/* onnxtune/fetch.h — downloading base models: http(s) URLs and hf://ORG/NAME[@REV][/FILE].
 *
 * Downloads go through libcurl into a content-addressed cache ($ONNXTUNE_CACHE, default
 * ~/.cache/onnxtune): a file is stored under blobs/<sha256> and reached through
 * refs/<sha256 of the URL> (a small text file naming the blob), so the same URL is fetched
 * once and identical content is stored once. A download is written to
 * "blobs/.partial-<url hash>" under an exclusive lock (concurrent fetches of one URL wait
 * for each other instead of writing the same file twice), resumed with a Range request
 * after an interruption, retried with exponential backoff on transient failures (connect
 * errors, 5xx, 429), checked against an expected sha256 ("URL#sha256=<hex>") and a size
 * limit, fsynced and renamed into place. Redirects are followed up to 10; only http and
 * https are accepted (file://, ftp:// and others are refused before any I/O). */
#ifndef ONNXTUNE_FETCH_H
#define ONNXTUNE_FETCH_H

#include <stdint.h>

#include "core/status.h"

typedef struct ot_fetch_opts {
    const char *cache_dir; /* NULL: $ONNXTUNE_CACHE or ~/.cache/onnxtune */
    const char *hub_url;   /* base for hf:// URLs; NULL: $ONNXTUNE_HUB_URL or https://huggingface.co */
    int64_t max_bytes;     /* refuse larger downloads; 0 = no limit */
    int retries;           /* attempts after the first; default when 0: 4 */
    int progress;          /* draw a progress bar on stderr (when it is a terminal) */
    const char *token;     /* bearer token for the hub; NULL: $HF_TOKEN */
} ot_fetch_opts;

/* True for strings fetch handles (http://, https://, hf://). */
int ot_is_url(const char *s);

/* Fetches one file; *path (malloc'd) is its local path in the cache. */
ot_status ot_fetch_file(const char *url, const ot_fetch_opts *opts, char **path);

/* Fetches a model: a URL of one file (an .onnx, with its external data when the model
 * names any, fetched from beside it), or hf://ORG/NAME[@REV] for a Hugging Face repository:
 * config.json, then model.safetensors or model.safetensors.index.json and every shard it
 * lists. *path (malloc'd) is a local file (.onnx) or a directory laid out as the repository
 * (config.json + safetensors) ready for ot_model_load. */
ot_status ot_fetch_model(const char *url, const ot_fetch_opts *opts, char **path);

#endif
