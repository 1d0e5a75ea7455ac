/* cmd_train.c — `onnxtune train` and `onnxtune run` (train, then export). Options come from
 * the shared table in trainer/config.c: a JSON job file (--config) first, then flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "trainer/train.h"

static int parse(const char *cmd, int argc, char **argv, ot_train_config *cfg, int *help) {
    ot_config_defaults(cfg);
    *help = 0;
    for (int i = 1; i < argc; i++) /* the job file first, so flags override it */
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return ot_cli_usage(cmd, "--config needs a file");
            if (ot_config_load_file(cfg, argv[i + 1]) != OT_OK) return ot_cli_fail("%s", ot_last_error());
        }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = 1;
            return 0;
        }
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0) return ot_cli_usage(cmd, "unexpected argument '%s'", argv[i]);
        int consumed;
        if (ot_config_set(cfg, argv[i], i + 1 < argc ? argv[i + 1] : NULL, &consumed) != OT_OK)
            return ot_cli_usage(cmd, "%s", ot_last_error());
        i += consumed;
    }
    if (ot_config_finalize(cfg, 1) != OT_OK) return ot_cli_usage(cmd, "%s", ot_last_error());
    return 0;
}

static void help(const char *cmd) {
    printf("usage: onnxtune %s --model MODEL.onnx --data DATA --out DIR [options]\n\n", cmd);
    if (!strcmp(cmd, "run"))
        printf("Trains like `onnxtune train`, then exports the final checkpoint in each --export format\n"
               "into DIR/export/ (model.onnx, model.safetensors, adapter/).\n\n");
    else
        printf("Fine-tunes the model (LoRA by default, --full for every weight) and writes checkpoints\n"
               "to DIR/checkpoints/. Every option can also come from a JSON job file (--config job.json,\n"
               "keys as below without dashes, e.g. {\"lora_r\": 16}); flags override the file.\n\n");
    printf("  %-26s %s\n", "--config FILE", "JSON job file with any of the options below");
    ot_config_print_help(stdout);
}

int ot_cmd_train(int argc, char **argv) {
    ot_train_config cfg;
    int want_help, rc = parse("train", argc, argv, &cfg, &want_help);
    if (!rc && want_help) help("train");
    if (!rc && !want_help && ot_train(&cfg) != OT_OK) rc = ot_cli_fail("%s", ot_last_error());
    ot_config_free(&cfg);
    return rc;
}

int ot_cmd_run(int argc, char **argv) {
    ot_train_config cfg;
    int want_help, rc = parse("run", argc, argv, &cfg, &want_help);
    if (!rc && want_help) help("run");
    if (rc || want_help) {
        ot_config_free(&cfg);
        return rc;
    }
    if (ot_train(&cfg) != OT_OK) {
        rc = ot_cli_fail("%s", ot_last_error());
        ot_config_free(&cfg);
        return rc;
    }
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/export", cfg.out);
    mkdir(dir, 0755);
    for (int i = 0; i < cfg.export_formats.n && !rc; i++) {
        const char *f = cfg.export_formats.v[i];
        snprintf(path, sizeof path, "%s/%s", dir,
                 !strcmp(f, "onnx") ? "model.onnx" : !strcmp(f, "safetensors") ? "model.safetensors" : "adapter");
        if (ot_export_checkpoint(cfg.out, f, cfg.export_dtype, path) != OT_OK) rc = ot_cli_fail("export %s: %s", f, ot_last_error());
        else printf("exported %s -> %s\n", f, path);
    }
    ot_config_free(&cfg);
    return rc;
}
