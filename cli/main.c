/* main.c — the onnxtune command: dispatches to one file per subcommand. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define OT_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"inspect", ot_cmd_inspect, "show a model's inputs, outputs, parameters and ops"},
    {"infer", ot_cmd_infer, "run a model's forward pass on .npy inputs"},
    {"train", ot_cmd_train, "fine-tune a model (LoRA or full) on a dataset"},
    {"export", ot_cmd_export, "export a checkpoint as ONNX, safetensors or a PEFT adapter"},
    {"run", ot_cmd_run, "train, then export: the whole pipeline in one command"},
    {"estimate", ot_cmd_estimate, "memory per rank of a training run (weights, grads, optimizer, activations; ZeRO)"},
    {"fetch", ot_cmd_fetch, "download base models (http(s):// or hf://) into the cache"},
    {"serve", ot_cmd_serve, "run the fine-tuning HTTP service (OpenAI fine-tuning API shape)"},
};

static void usage(FILE *f) {
    fprintf(f, "onnxtune %s — fine-tune ONNX models\n\nusage: onnxtune <command> [options]\n\ncommands:\n", OT_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`onnxtune <command> --help` describes each command's options.\n");
}

int ot_cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("onnxtune: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int ot_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "onnxtune %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see `onnxtune %s --help`)\n", cmd);
    va_end(ap);
    return 2;
}

int ot_cli_parse_int(const char *opt, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "onnxtune: error: %s expects an integer in [%ld, %ld], got '%s'\n", opt, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

const char *ot_cli_bytes(char *buf, unsigned long buflen, double bytes) {
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) bytes /= 1000, u++;
    snprintf(buf, buflen, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("onnxtune %s\n", OT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "onnxtune: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
