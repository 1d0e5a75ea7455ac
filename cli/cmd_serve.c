/* cmd_serve.c — `onnxtune serve`: parses the options, starts the HTTP service
 * (service/server.h) and runs until SIGINT or SIGTERM, then stops gracefully: event streams
 * end, the daemon stops, running training children are terminated and their jobs stay
 * `running` in the store so the next start resumes them from their last checkpoint. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "service/server.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void help(void) {
    printf("usage: onnxtune serve [options]\n\n"
           "Runs the fine-tuning HTTP service (OpenAI fine-tuning API shape) until SIGINT/SIGTERM.\n\n"
           "  --host ADDR             address to bind (default: 127.0.0.1; loopback unless you say otherwise)\n"
           "  --port N                TCP port, 0 for any free port (default: 8080)\n"
           "  --data-dir DIR          job store, uploads and job outputs (default: onnxtune-data)\n"
           "  --workers N             training jobs run at once, 1..64 (default: 1)\n"
           "  --threads N             HTTP worker threads, 1..256 (default: 4)\n"
           "  --api-key-file F        require 'Authorization: Bearer <key>' with the key in F (first line)\n"
           "  --model-root DIR        local model paths must lie under DIR (repeatable; default: none, so only\n"
           "                          http(s):// and hf:// models are accepted)\n"
           "  --max-upload-bytes N    largest accepted upload (default: %lld)\n"
           "\nThe listening address is printed as 'onnxtune serve: listening on http://HOST:PORT'.\n",
           (long long)OT_SERVER_DEFAULT_UPLOAD);
}

/* Reads the key: the first line of `path`, surrounding whitespace removed. */
static char *read_key(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ot_cli_fail("--api-key-file '%s': cannot open", path);
        return NULL;
    }
    char buf[1024];
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!line) {
        ot_cli_fail("--api-key-file '%s': empty", path);
        return NULL;
    }
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) buf[--n] = 0;
    char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) {
        ot_cli_fail("--api-key-file '%s': the first line holds no key", path);
        return NULL;
    }
    return strdup(p);
}

int ot_cmd_serve(int argc, char **argv) {
    ot_server_opts o = {0};
    o.host = "127.0.0.1";
    o.port = 8080;
    o.data_dir = "onnxtune-data";
    o.workers = 1;
    o.threads = 4;
    const char *key_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        }
        if (!v) return ot_cli_usage("serve", "option '%s' needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--host")) o.host = v;
        else if (!strcmp(a, "--port")) {
            if (ot_cli_parse_int(a, v, 0, 65535, &x)) return 2;
            o.port = (int)x;
        } else if (!strcmp(a, "--data-dir")) o.data_dir = v;
        else if (!strcmp(a, "--workers")) {
            if (ot_cli_parse_int(a, v, 1, 64, &x)) return 2;
            o.workers = (int)x;
        } else if (!strcmp(a, "--threads")) {
            if (ot_cli_parse_int(a, v, 1, 256, &x)) return 2;
            o.threads = (int)x;
        } else if (!strcmp(a, "--api-key-file")) key_file = v;
        else if (!strcmp(a, "--model-root")) {
            if (o.n_model_roots == OT_SERVER_MAX_MODEL_ROOTS)
                return ot_cli_usage("serve", "at most %d --model-root options", OT_SERVER_MAX_MODEL_ROOTS);
            o.model_roots[o.n_model_roots++] = v;
        } else if (!strcmp(a, "--max-upload-bytes")) {
            if (ot_cli_parse_int(a, v, 1, 1L << 40, &x)) return 2;
            o.max_upload_bytes = x;
        } else return ot_cli_usage("serve", "unknown option '%s'", a);
    }
    char *key = NULL;
    if (key_file && !(key = read_key(key_file))) return 1;
    o.api_key = key;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ot_server *srv = NULL;
    ot_status st = ot_server_start(&o, &srv);
    free(key);
    if (st) return ot_cli_fail("serve: %s", ot_last_error());
    printf("onnxtune serve: listening on http://%s:%d (data dir %s, %d worker%s)\n", o.host, ot_server_port(srv),
           o.data_dir, o.workers, o.workers == 1 ? "" : "s");
    fflush(stdout);
    while (!stop_requested) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "onnxtune serve: stopping\n");
    ot_server_stop(srv);
    return 0;
}
