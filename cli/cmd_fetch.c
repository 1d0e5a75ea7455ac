/* cmd_fetch.c — `onnxtune fetch URL... [--cache DIR] [--hub-url URL] [--max-bytes N]
 * [--retries N]`: downloads base models into the cache ahead of training (see
 * onnxtune/fetch.h) and prints the local path of each on stdout, one a line, in the order
 * given. Stops at the first failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "onnxtune/fetch.h"

static const char *fetch_help =
    "usage: onnxtune fetch URL... [--cache DIR] [--hub-url URL] [--max-bytes N] [--retries N]\n"
    "\n"
    "Downloads models into the cache and prints the local path of each, one per line. A URL is\n"
    "  http(s)://HOST/PATH/FILE[#sha256=HEX]   one file (an .onnx brings its external data\n"
    "                                          from beside it); prints the local file\n"
    "  hf://ORG/NAME[@REV]                     a Hugging Face repository: config.json and\n"
    "                                          model.safetensors or its index and shards;\n"
    "                                          prints the local folder\n"
    "  hf://ORG/NAME[@REV]/FILE[#sha256=HEX]   one file of such a repository\n"
    "Interrupted downloads resume; cached URLs are not downloaded again. Only http and https\n"
    "are accepted (also for redirects, at most 10).\n"
    "\n"
    "  --cache DIR      cache folder (default: $ONNXTUNE_CACHE, else ~/.cache/onnxtune)\n"
    "  --hub-url URL    base URL for hf:// (default: $ONNXTUNE_HUB_URL, else https://huggingface.co)\n"
    "  --max-bytes N    refuse any file larger than N bytes (default: 0, no limit)\n"
    "  --retries N      retries after a transient failure, with exponential backoff (default: 4)\n"
    "Environment: HF_TOKEN, a bearer token sent to the hub for hf:// URLs.\n";

int ot_cmd_fetch(int argc, char **argv) {
    ot_fetch_opts opts = {.progress = 1};
    const char **urls = calloc((size_t)argc, sizeof *urls);
    if (!urls) return ot_cli_fail("out of memory");
    int n = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(fetch_help, stdout);
            free(urls);
            return 0;
        } else if (strcmp(a, "--cache") == 0 || strcmp(a, "--hub-url") == 0) {
            if (!has_value) rc = ot_cli_usage("fetch", "%s needs a value", a);
            else if (a[2] == 'c') opts.cache_dir = argv[++i];
            else opts.hub_url = argv[++i];
        } else if (strcmp(a, "--max-bytes") == 0) {
            long v;
            if (!has_value) rc = ot_cli_usage("fetch", "%s needs a value", a);
            else if (ot_cli_parse_int(a, argv[++i], 0, __LONG_MAX__, &v) != 0) rc = 2;
            else opts.max_bytes = v;
        } else if (strcmp(a, "--retries") == 0) {
            long v;
            if (!has_value) rc = ot_cli_usage("fetch", "%s needs a value", a);
            else if (ot_cli_parse_int(a, argv[++i], 0, 100, &v) != 0) rc = 2;
            else opts.retries = v ? (int)v : -1; /* the library reads 0 as "default" */
        } else if (a[0] == '-' && a[1]) {
            rc = ot_cli_usage("fetch", "unknown option '%s'", a);
        } else {
            urls[n++] = a;
        }
    }
    if (rc == 0 && n == 0) rc = ot_cli_usage("fetch", "expected at least one URL");
    for (int i = 0; i < n && rc == 0; i++) {
        char *path = NULL;
        ot_status st = ot_fetch_model(urls[i], &opts, &path);
        if (st != OT_OK) {
            rc = ot_cli_fail("%s", ot_last_error());
        } else {
            printf("%s\n", path);
            fflush(stdout);
        }
        free(path);
    }
    free(urls);
    return rc;
}
