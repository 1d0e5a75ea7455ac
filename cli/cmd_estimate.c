/* cmd_estimate.c — `onnxtune estimate`: memory per rank of a training run before it starts
 * (trainer/estimate.h). Takes every training option `train` takes (same table, same
 * --config job file), plus its own: --params N, --trainable-params T, --zero Z, --ranks R,
 * --json. --data and --out are optional here: without --data the activations are planned
 * for a synthetic micro-batch [--micro-batch-size, --seq-len]. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "trainer/estimate.h"

typedef struct {
    ot_estimate_opts o;
    int json, help, use_data;
} est_args;

/* "7e9", "7000000000", "7B", "1.5M": a positive whole count up to 1e15. */
static int parse_count(const char *opt, const char *s, int64_t *out) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (s && end != s && *end && !end[1]) {
        const char *suf = "kKmMbBgGtT";
        const char *hit = strchr(suf, *end);
        static const double mult[] = {1e3, 1e3, 1e6, 1e6, 1e9, 1e9, 1e9, 1e9, 1e12, 1e12};
        if (hit) v *= mult[hit - suf], end++;
    }
    if (!s || errno || end == s || *end || !(v >= 1) || v > 1e15 || v != floor(v)) {
        fprintf(stderr, "onnxtune: error: %s expects a whole parameter count in [1, 1e15] (7e9, 7B), got '%s'\n", opt,
                s ? s : "");
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int parse(int argc, char **argv, ot_train_config *cfg, est_args *a) {
    const char *cmd = "estimate";
    memset(a, 0, sizeof *a);
    a->o.ranks = 1;
    ot_config_defaults(cfg);
    for (int i = 1; i < argc; i++) /* the job file first, so flags override it */
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return ot_cli_usage(cmd, "--config needs a file");
            if (ot_config_load_file(cfg, argv[i + 1]) != OT_OK) return ot_cli_fail("%s", ot_last_error());
        }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            a->help = 1;
            return 0;
        }
        if (!strcmp(arg, "--config")) {
            i++;
        } else if (!strcmp(arg, "--json")) {
            a->json = 1;
        } else if (!strcmp(arg, "--params")) {
            if (parse_count(arg, val, &a->o.params)) return 2;
            i++;
        } else if (!strcmp(arg, "--trainable-params")) {
            if (parse_count(arg, val, &a->o.trainable_params)) return 2;
            i++;
        } else if (!strcmp(arg, "--zero")) {
            if (ot_cli_parse_int(arg, val, 0, 3, &l)) return 2;
            a->o.zero = (int)l, i++;
        } else if (!strcmp(arg, "--ranks")) {
            if (ot_cli_parse_int(arg, val, 1, 1000000, &l)) return 2;
            a->o.ranks = (int)l, i++;
        } else if (strncmp(arg, "--", 2) != 0) {
            return ot_cli_usage(cmd, "unexpected argument '%s'", arg);
        } else {
            int consumed;
            if (ot_config_set(cfg, arg, val, &consumed) != OT_OK) return ot_cli_usage(cmd, "%s", ot_last_error());
            i += consumed;
        }
    }
    if (cfg->model && a->o.params) return ot_cli_usage(cmd, "give --model or --params, not both");
    if (!cfg->model && !a->o.params)
        return ot_cli_usage(cmd, "missing --model M (or --params N to estimate from a parameter count)");
    if (a->o.trainable_params && !a->o.params)
        return ot_cli_usage(cmd, "--trainable-params goes with --params; with --model the graph gives the count");
    if (a->o.trainable_params && cfg->full)
        return ot_cli_usage(cmd, "--trainable-params is for LoRA; --full trains all --params");
    if (a->o.params && !cfg->full && !a->o.trainable_params)
        return ot_cli_usage(cmd, "LoRA with --params needs --trainable-params T (the adapter's parameter count), or "
                                 "--model M to count it from the graph");
    /* finalize checks and derives like `train` (one rank: the micro-batch a run uses), and
     * wants what estimate does not need: fill placeholders, then drop them. */
    a->use_data = cfg->data != NULL;
    int fake_model = !cfg->model, fake_data = !cfg->data, fake_out = !cfg->out;
    if (fake_model) cfg->model = strdup("-");
    if (fake_data) cfg->data = strdup("-");
    if (fake_out) cfg->out = strdup("-");
    ot_status st = ot_config_finalize(cfg, 1);
    if (fake_model) free(cfg->model), cfg->model = NULL;
    if (fake_data) free(cfg->data), cfg->data = NULL;
    if (fake_out) free(cfg->out), cfg->out = NULL;
    if (st != OT_OK) return ot_cli_usage(cmd, "%s", ot_last_error());
    return 0;
}

static void help(void) {
    printf("usage: onnxtune estimate (--model MODEL | --params N) [--full | LoRA options]\n"
           "                         [--precision fp32|bf16|fp16] [--zero 0|1|2|3] [--ranks R]\n"
           "                         [--micro-batch-size B] [--seq-len S]\n"
           "                         [--checkpoint-activations] [--json] [any training option]\n\n"
           "Prints the memory per rank a training run needs: weights, gradients, FP32 master weights and\n"
           "AdamW state (16 bytes per trainable parameter in every precision, sharded by ZeRO stage 1/2/3\n"
           "over"
           " --ranks), the FP32 gradient accumulation buffer (with more than one micro-batch per step),\n"
           "and activations from the planned training graph of one micro-batch, with and without\n"
           "--checkpoint-activations. Bytes and GB (1e9 bytes).\n\n");
    printf("  %-26s %s\n", "--params N", "a parameter count (7e9, 7B) instead of a model; no activations then");
    printf("  %-26s %s\n", "--trainable-params T", "LoRA with --params: the adapter's parameter count (on top of N)");
    printf("  %-26s %s\n", "--zero Z",
           "ZeRO stage: 1 shards optimizer state and masters, 2 also gradients, 3 also weights (default: 0)");
    printf("  %-26s %s\n", "--ranks R", "data-parallel ranks the ZeRO shards spread over (default: 1)");
    printf("  %-26s %s\n", "--json", "one JSON object instead of the table (bytes as integers)");
    printf("  %-26s %s\n", "--config FILE", "JSON job file with any of the options below");
    printf("\nTraining options (as `onnxtune train`; --data, if given, supplies the micro-batch):\n");
    ot_config_print_help(stdout);
}

int ot_cmd_estimate(int argc, char **argv) {
    ot_train_config cfg;
    est_args a;
    int rc = parse(argc, argv, &cfg, &a);
    if (!rc && a.help) help();
    if (rc || a.help) {
        ot_config_free(&cfg);
        return rc;
    }
    ot_estimate e;
    char what[64];
    if (ot_estimate_run(&cfg, &a.o, a.use_data, &e) != OT_OK) {
        rc = ot_cli_fail("estimate: %s", ot_last_error());
    } else {
        if (a.o.params) snprintf(what, sizeof what, "%lld parameters", (long long)a.o.params);
        const char *src = a.o.params ? what : cfg.model;
        if (a.json) {
            cJSON *j = ot_estimate_to_json(&e, src);
            char *text = j ? cJSON_PrintUnformatted(j) : NULL;
            if (text) printf("%s\n", text);
            else rc = ot_cli_fail("out of memory");
            free(text);
            cJSON_Delete(j);
        } else {
            ot_estimate_print(stdout, &e, src);
        }
    }
    ot_config_free(&cfg);
    return rc;
}
