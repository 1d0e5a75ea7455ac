/* fetch_internal.h — the pieces of onnxtune/fetch.h shared by its three files and tested
 * on their own (tests/unit/test_fetch.c): URL parsing and scheme refusal, hf:// resolution,
 * cache paths (fetch_url.c, no I/O but the environment); one-file downloads into the cache
 * (fetch.c); model layouts built from them (fetch_model.c).
 *
 * Every string returned here is malloc'd and owned by the caller. */
#ifndef OT_FETCH_INTERNAL_H
#define OT_FETCH_INTERNAL_H

#include "importer/sha256.h"
#include "onnxtune/fetch.h"

#define OT_FETCH_DEFAULT_HUB "https://huggingface.co"
#define OT_FETCH_DEFAULT_RETRIES 4

/* One downloadable file: an http(s) URL with the fragment removed, and what the fragment
 * asked for. */
typedef struct ot_fetch_target {
    char *url;                          /* http:// or https://, no fragment */
    char sha256[OT_SHA256_HEX_LEN + 1]; /* expected content digest (lowercase), "" if none */
    int hub;                            /* resolved from hf://: the hub token may be sent */
} ot_fetch_target;

void ot_fetch_target_free(ot_fetch_target *t);

/* A parsed hf://ORG/NAME[@REV][/FILE]. rev defaults to "main"; file is NULL when absent. */
typedef struct ot_hf_ref {
    char *org, *name, *rev, *file;
} ot_hf_ref;

void ot_hf_ref_free(ot_hf_ref *r);

/* OK for an http:// or https:// URL with a host; OT_E_UNSUPPORTED naming the scheme for any
 * other (file://, ftp://, gopher://, ...), OT_E_INVALID for something that is no URL. */
ot_status ot_fetch_check_scheme(const char *url);

/* True when `s` starts with "hf://" (case-insensitive scheme). */
int ot_fetch_is_hf(const char *s);

/* Parses hf://ORG/NAME[@REV][/FILE][#sha256=HEX] (the fragment is ignored here). ORG, NAME
 * and REV are made of letters, digits, '.', '_' and '-' (not "." or ".."); FILE is a
 * relative path accepted by ot_fetch_check_relpath. */
ot_status ot_hf_parse(const char *url, ot_hf_ref *out);

/* "<hub>/<org>/<name>/resolve/<rev>/<file>" (file NULL: ending in '/'); the hub must be an
 * http(s) URL, a trailing '/' on it is ignored. */
ot_status ot_hf_resolve(const char *hub, const ot_hf_ref *r, const char *file, char **out);

/* The hub base URL in effect: opts->hub_url, $ONNXTUNE_HUB_URL, or the default. */
const char *ot_fetch_hub(const ot_fetch_opts *opts);

/* Resolves any URL fetch accepts to a target: http(s) kept as is, hf:// with a FILE
 * resolved against the hub. Splits "#sha256=HEX" off; any other fragment is refused. */
ot_status ot_fetch_resolve(const char *url, const ot_fetch_opts *opts, ot_fetch_target *out);

/* A location read from a model file (or an hf:// FILE): a relative path whose components
 * are not empty, "." or "..", without '\\' or control characters. `what` names the source. */
ot_status ot_fetch_check_relpath(const char *rel, const char *what);

/* The URL of `rel` next to the file `url` names ("http://h/a/m.onnx?x" + "w/d.bin" ->
 * "http://h/a/w/d.bin"); bytes outside RFC 3986's unreserved set and '/' are %-encoded. */
ot_status ot_fetch_url_sibling(const char *url, const char *rel, char **out);

/* The last path segment of a URL, without query, %-decoded; an error when it is empty or
 * decodes to something ot_fetch_check_relpath refuses as a single file name. */
ot_status ot_fetch_url_basename(const char *url, char **out);

/* The cache root in effect: opts->cache_dir, $ONNXTUNE_CACHE, or $HOME/.cache/onnxtune. */
ot_status ot_fetch_cache_root(const ot_fetch_opts *opts, char **out);

/* "<root>/<sub>/<name>" (sub or name may be NULL to leave them out). */
char *ot_fetch_join(const char *root, const char *sub, const char *name);

/* The cache key of a URL: sha256 hex of the string as given (callers pass target.url). */
ot_status ot_fetch_url_key(const char *url, char key[OT_SHA256_HEX_LEN + 1]);

/* fetch.c: downloads `t` into the cache (or finds it there) and returns the blob's path.
 * When the server answers 404 (or 410), *not_found (if non-NULL) is set, besides the error. */
ot_status ot_fetch_target_file(const ot_fetch_target *t, const ot_fetch_opts *opts, char **path, int *not_found);

/* fetch.c: makes `dest` a hard link to (or, across devices, an fsynced copy of) `blob`,
 * atomically: a temporary name renamed into place, so dest is never half-written. Creates
 * dest's parent directories. */
ot_status ot_fetch_place(const char *blob, const char *dest);

/* fetch.c: an exclusive flock() on "<root>/locks/<name>.lock"; *fd is closed to release. */
ot_status ot_fetch_lock(const char *root, const char *name, int *fd);

/* fetch.c: creates `dir` and its parents (mode 0755). */
ot_status ot_fetch_mkdirs(const char *dir);

#endif
