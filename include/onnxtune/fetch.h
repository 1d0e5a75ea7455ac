/* onnxtune/fetch.h — downloading base models: http(s) URLs and hf://ORG/NAME[@REV][/FILE].
 *
 * Downloads go through libcurl into a content-addressed cache ($ONNXTUNE_CACHE, default
 * ~/.cache/onnxtune):
 *
 *   blobs/<sha256 of content>        every downloaded file, stored once
 *   refs/<sha256 of URL>             "<content sha256>\n<URL>\n": the URL's blob
 *   blobs/.partial-<sha256 of URL>   a download in progress (+ ".validator": its ETag or
 *                                    Last-Modified, sent as If-Range when resuming)
 *   locks/<sha256 of URL>.lock       flock()ed while that URL downloads
 *   models/<key>/...                 ot_fetch_model's layouts: hard links to blobs (not
 *                                    symlinks, which the ONNX reader's confinement of
 *                                    external data to the model's folder would refuse; a
 *                                    copy across devices), and ".onnxtune-complete" once
 *                                    every file is in place; locks/m-<key>.lock while built
 *
 * The URL key hashes the URL without its fragment (for hf://, the resolved hub URL). So the
 * same URL is fetched once and identical content is stored once. A download is written to
 * the partial file under the exclusive lock (concurrent fetches of one URL wait for each
 * other, then find the ref), resumed with a Range request after an interruption (a 206
 * must start where asked; a 200 replaces the partial file), retried with exponential
 * backoff on transient failures (connect errors, timeouts, dropped connections, 408, 429,
 * 5xx), checked against an expected sha256 ("URL#sha256=<hex>") and a size limit, fsynced
 * and renamed into place: nothing half-written ever sits at a final path. Redirects are
 * followed up to 10; only http and https are accepted, also as redirect targets (file://,
 * ftp:// and others are refused before any I/O). A cached URL is never re-validated
 * against the server: delete its ref (or the cache) to fetch it again. */
#ifndef ONNXTUNE_FETCH_H
#define ONNXTUNE_FETCH_H

#include <stdint.h>

#include "core/status.h"

typedef struct ot_fetch_opts {
    const char *cache_dir; /* NULL: $ONNXTUNE_CACHE or ~/.cache/onnxtune */
    const char *hub_url;   /* base for hf:// URLs; NULL: $ONNXTUNE_HUB_URL or https://huggingface.co */
    int64_t max_bytes;     /* refuse larger downloads; 0 = no limit */
    int retries;           /* attempts after the first; 0: the default, 4; negative: none */
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
