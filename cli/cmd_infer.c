/* cmd_infer.c — `onnxtune infer MODEL --input NAME=FILE.npy ... --out DIR`: plans the model
 * for the given input shapes, runs the forward pass and writes every graph output to
 * DIR/<sanitised output name>.npy (each file atomically). `--repeat N` times N further runs
 * and prints one JSON line, for benchmarks. */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/npy.h"
#include "onnxtune/importer.h"
#include "onnxtune/runtime.h"

static const char *infer_help =
    "usage: onnxtune infer MODEL --input NAME=FILE.npy [--input ...] --out DIR [options]\n"
    "\n"
    "MODEL is an .onnx file, a Hugging Face model directory, or an http(s):// or hf:// URL.\n"
    "\n"
    "Runs the model's forward pass on CPU and writes each output as DIR/<name>.npy\n"
    "(characters outside [A-Za-z0-9._-] in output names become '_').\n"
    "\n"
    "  --input NAME=FILE  a graph input from a NumPy .npy file; one per graph input\n"
    "  --out DIR          output folder, created if missing (required)\n"
    "  --threads N        CPU threads for kernels and BLAS (default: all cores)\n"
    "  --warmup N         untimed runs before --repeat's timed ones (default: 1, the run\n"
    "                     whose outputs are written)\n"
    "  --repeat N         time N more runs and print a JSON line with mean_ms and min_ms\n"
    "                     (default: 0)\n"
    "  --verbose          print the plan's statistics (steps, folded nodes, arena bytes)\n";

typedef struct {
    char *name;
    const char *file;
    ot_tensor *t;
} feed;

static void sanitise(char *s) {
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            *s = '_';
}

static int ensure_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return ot_cli_fail("--out '%s' exists and is not a directory", dir);
        return 0;
    }
    if (mkdir(dir, 0755) != 0) return ot_cli_fail("cannot create output folder '%s': %s", dir, strerror(errno));
    return 0;
}

static int write_outputs(const ot_graph *g, const ot_tensor *outs, const char *dir) {
    for (int i = 0; i < g->n_outputs; i++) {
        char name[1024], path[4096];
        snprintf(name, sizeof name, "%s", g->values[g->outputs[i]].name);
        sanitise(name);
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) snprintf(name, sizeof name, "output_%d", i);
        snprintf(path, sizeof path, "%s/%s.npy", dir, name);
        if (ot_npy_write(path, &outs[i]) != OT_OK) return ot_cli_fail("%s", ot_last_error());
        char shape[256];
        printf("%s: %s %s -> %s\n", g->values[g->outputs[i]].name, ot_dtype_name(outs[i].dtype),
               ot_shape_str(shape, sizeof shape, outs[i].ndim, outs[i].dims), path);
    }
    return 0;
}

static int run_model(const char *model, feed *feeds, int n_feeds, const char *out_dir, long warmup, long repeat,
                     int verbose) {
    ot_graph *g = NULL;
    ot_plan *plan = NULL;
    const ot_tensor **inputs = NULL;
    ot_tensor *outs = NULL;
    int rc = 1;
    if (ot_model_load(model, &g) != OT_OK) return ot_cli_fail("%s", ot_last_error());

    inputs = calloc((size_t)g->n_inputs + 1, sizeof *inputs);
    outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
    if (!inputs || !outs) {
        rc = ot_cli_fail("out of memory");
        goto done;
    }
    for (int f = 0; f < n_feeds; f++) {
        int v = ot_graph_find(g, feeds[f].name);
        int pos = -1;
        for (int i = 0; v >= 0 && i < g->n_inputs; i++)
            if (g->inputs[i] == v) pos = i;
        if (pos < 0) {
            char known[2048] = "";
            size_t k = 0;
            for (int i = 0; i < g->n_inputs && k < sizeof known; i++)
                k += (size_t)snprintf(known + k, sizeof known - k, "%s'%s'", i ? ", " : "", g->values[g->inputs[i]].name);
            rc = ot_cli_fail("--input '%s': the model has no input of that name (its inputs: %s)", feeds[f].name, known);
            goto done;
        }
        if (inputs[pos]) {
            rc = ot_cli_fail("--input '%s' is given twice", feeds[f].name);
            goto done;
        }
        inputs[pos] = feeds[f].t;
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (!inputs[i]) {
            rc = ot_cli_fail("missing --input for graph input '%s' (%s)", g->values[g->inputs[i]].name,
                             ot_dtype_name(g->values[g->inputs[i]].dtype));
            goto done;
        }
    if (ot_plan_create(g, inputs, &plan) != OT_OK) {
        rc = ot_cli_fail("'%s': %s", model, ot_last_error());
        goto done;
    }
    if (verbose) {
        ot_plan_stats s;
        char a[64], b[64], c[64];
        ot_plan_get_stats(plan, &s);
        fprintf(stderr, "plan: %d nodes -> %d steps (%d folded, %d views); arena %s (without reuse %s); folded constants %s\n",
                s.n_nodes, s.n_steps, s.n_folded, s.n_views, ot_cli_bytes(a, sizeof a, (double)s.arena_bytes),
                ot_cli_bytes(b, sizeof b, (double)s.naive_bytes), ot_cli_bytes(c, sizeof c, (double)s.folded_bytes));
    }
    for (long w = 0; w < (warmup > 1 ? warmup : 1); w++)
        if (ot_plan_run(plan, inputs, outs) != OT_OK) {
            rc = ot_cli_fail("'%s': %s", model, ot_last_error());
            goto done;
        }
    if (repeat > 0) {
        double sum = 0, best = 1e30;
        for (long r = 0; r < repeat; r++) {
            double t0 = omp_get_wtime();
            if (ot_plan_run(plan, inputs, outs) != OT_OK) {
                rc = ot_cli_fail("'%s': %s", model, ot_last_error());
                goto done;
            }
            double dt = (omp_get_wtime() - t0) * 1e3;
            sum += dt;
            if (dt < best) best = dt;
        }
        ot_plan_stats s;
        ot_plan_get_stats(plan, &s);
        printf("{\"repeat\": %ld, \"mean_ms\": %.4f, \"min_ms\": %.4f, \"threads\": %d, \"arena_bytes\": %zu}\n", repeat,
               sum / (double)repeat, best, omp_get_max_threads(), s.arena_bytes);
        ot_plan_print_profile(plan);
    }
    rc = write_outputs(g, outs, out_dir);
done:
    ot_plan_free(plan);
    free(inputs);
    free(outs);
    ot_graph_free(g);
    return rc;
}

int ot_cmd_infer(int argc, char **argv) {
    const char *model = NULL, *out_dir = NULL;
    long threads = 0, repeat = 0, warmup = 1;
    int verbose = 0, n_feeds = 0, rc = 2;
    feed *feeds = calloc((size_t)argc + 1, sizeof *feeds);
    if (!feeds) return ot_cli_fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(infer_help, stdout);
            rc = 0;
            goto done;
        } else if (strcmp(a, "--input") == 0 || strcmp(a, "--out") == 0 || strcmp(a, "--threads") == 0 ||
                   strcmp(a, "--repeat") == 0 || strcmp(a, "--warmup") == 0) {
            if (!val) {
                rc = ot_cli_usage("infer", "%s needs a value", a);
                goto done;
            }
            i++;
            if (strcmp(a, "--out") == 0) {
                out_dir = val;
            } else if (strcmp(a, "--threads") == 0) {
                if (ot_cli_parse_int(a, val, 0, 4096, &threads)) goto done;
            } else if (strcmp(a, "--repeat") == 0) {
                if (ot_cli_parse_int(a, val, 0, 1000000, &repeat)) goto done;
            } else if (strcmp(a, "--warmup") == 0) {
                if (ot_cli_parse_int(a, val, 1, 1000000, &warmup)) goto done;
            } else {
                const char *eq = strchr(val, '=');
                if (!eq || eq == val || !eq[1]) {
                    rc = ot_cli_usage("infer", "--input expects NAME=FILE.npy, got '%s'", val);
                    goto done;
                }
                feeds[n_feeds].name = strndup(val, (size_t)(eq - val));
                feeds[n_feeds].file = eq + 1;
                if (!feeds[n_feeds].name) {
                    rc = ot_cli_fail("out of memory");
                    goto done;
                }
                n_feeds++;
            }
        } else if (strcmp(a, "--verbose") == 0) {
            verbose = 1;
        } else if (a[0] == '-' && a[1]) {
            rc = ot_cli_usage("infer", "unknown option '%s'", a);
            goto done;
        } else if (!model) {
            model = a;
        } else {
            rc = ot_cli_usage("infer", "unexpected argument '%s'", a);
            goto done;
        }
    }
    if (!model) {
        rc = ot_cli_usage("infer", "missing MODEL");
        goto done;
    }
    if (!out_dir) {
        rc = ot_cli_usage("infer", "missing --out DIR");
        goto done;
    }
    rc = 1;
    for (int f = 0; f < n_feeds; f++)
        if (ot_npy_read(feeds[f].file, &feeds[f].t) != OT_OK) {
            ot_cli_fail("--input '%s': %s", feeds[f].name, ot_last_error());
            goto done;
        }
    if (ensure_dir(out_dir)) goto done;
    ot_set_threads((int)threads);
    rc = run_model(model, feeds, n_feeds, out_dir, warmup, repeat, verbose);
done:
    for (int f = 0; f < n_feeds; f++) {
        free(feeds[f].name);
        ot_tensor_free(feeds[f].t);
    }
    free(feeds);
    return rc;
}
