/* cmd_export.c — `onnxtune export --checkpoint DIR --format onnx|safetensors|peft --out PATH`. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "trainer/train.h"

static const char *export_help =
    "usage: onnxtune export --checkpoint DIR --format onnx|safetensors|peft [--dtype D] --out PATH\n"
    "\n"
    "  --checkpoint DIR   a run's output directory (its latest checkpoint) or a checkpoint directory\n"
    "  --format F         onnx: the original graph with B·A merged into each adapted weight (or the\n"
    "                     fully trained weights), same layout and dtypes, runs in ONNX Runtime;\n"
    "                     safetensors: merged weights by module name (PyTorch layout);\n"
    "                     peft: a PEFT LoRA adapter directory (adapter_model.safetensors +\n"
    "                     adapter_config.json) (default: onnx)\n"
    "  --dtype D          as-source | fp32 | bf16 | fp16: dtype of the written weights (default: the\n"
    "                     run's --export-dtype, as-source unless set: a model imported as FP32 is\n"
    "                     written FP32 whatever precision trained it, merged from the FP32 masters);\n"
    "                     onnx keeps the graph's dtypes, so only as-source or the source dtype\n"
    "  --out PATH         output file (onnx, safetensors) or directory (peft)\n";

int ot_cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *format = "onnx", *out = NULL, *dtype = NULL;
    for (int i = 1; i < argc; i += 2) { /* every argument is a flag with a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(export_help, stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--checkpoint") ? &ckpt : !strcmp(a, "--format") ? &format : !strcmp(a, "--out") ? &out : !strcmp(a, "--dtype") ? &dtype : NULL;
        if (!dst) return ot_cli_usage("export", "unknown argument '%s'", a);
        if (!v) return ot_cli_usage("export", "%s needs a value", a);
        *dst = v;
    }
    if (!ckpt) return ot_cli_usage("export", "missing --checkpoint");
    if (!out) return ot_cli_usage("export", "missing --out");
    if (ot_export_checkpoint(ckpt, format, dtype, out) != OT_OK) return ot_cli_fail("%s", ot_last_error());
    printf("exported %s -> %s\n", format, out);
    return 0;
}
