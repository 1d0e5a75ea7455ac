/* bench/kernels/lowp_gemm.c — microbenchmark (not a test) of the 16-bit GEMM paths and the
 * bulk converters, on the thread count given (default 2):
 *   f32 sgemm (OpenBLAS) vs bf16 on oneDNN (ot_gemm_lowp_run) vs bf16 and f16 through the
 *   f32 path (convert + sgemm + round), for [2048,768]x[768,3072] and [2048,768]x[768,768];
 *   then f32 <-> bf16/f16 conversion bandwidth at each vector level of core/lowp.c.
 * Prints the median of the timed repetitions (after one warm-up). Build from the repo root
 * against a Release build dir B (see the H1a report):
 *   cc -O2 -fopenmp -I. -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-openmp \
 *      bench/kernels/lowp_gemm.c B/libonnxtune.a -lopenblas -ldnnl -lm -o /tmp/lowp_gemm
 *   /tmp/lowp_gemm [threads] [reps]
 * ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 compares AVX512-BF16 with the default AMX kernels. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lowp.h"
#include "core/lowp_x86.h"
#include "onnxtune/runtime.h"
#include "runtime/ops/linalg_internal.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct gemm_args {
    int64_t M, N, K;
    void *a, *b, *c;
    ot_dtype t;
} gemm_args;

static void run_one(const gemm_args *g) {
    if (g->t == OT_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)g->M, (blasint)g->N, (blasint)g->K, 1.0f,
                    g->a, (blasint)g->K, g->b, (blasint)g->N, 0.0f, g->c, (blasint)g->N);
        return;
    }
    ot_gemm_batch b = {0};
    b.dtype = g->t;
    b.M = g->M, b.N = g->N, b.K = g->K, b.lda = g->K, b.ldb = g->N;
    b.a = g->a, b.b = g->b, b.c = g->c;
    if (ot_gemm_lowp_run(&b, NULL) != OT_OK) {
        fprintf(stderr, "%s\n", ot_last_error());
        exit(1);
    }
}

static double median_ms(void (*fn)(const void *), const void *arg, int reps) {
    double t[64];
    fn(arg); /* warm-up: primitive creation, page faults */
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        fn(arg);
        t[r] = (omp_get_wtime() - t0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_d);
    return t[reps / 2];
}
static void gemm_thunk(const void *p) { run_one(p); }

static void bench_shape(int64_t M, int64_t K, int64_t N, int reps) {
    size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
    float *fa = malloc(na * 4), *fb = malloc(nb * 4), *fc = malloc(nc * 4);
    uint16_t *ha = malloc(na * 2), *hb = malloc(nb * 2), *hc = malloc(nc * 2);
    if (!fa || !fb || !fc || !ha || !hb || !hc) exit(2);
    for (size_t i = 0; i < na; i++) fa[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < nb; i++) fb[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    double flop = 2.0 * (double)M * (double)N * (double)K;
    printf("[%lld,%lld]x[%lld,%lld] (%d threads)\n", (long long)M, (long long)K, (long long)K, (long long)N,
           omp_get_max_threads());
    gemm_args g = {M, N, K, fa, fb, fc, OT_F32};
    double ms = median_ms(gemm_thunk, &g, reps);
    printf("  f32 sgemm (OpenBLAS)          %8.2f ms  %7.1f GFLOP/s\n", ms, flop / ms / 1e6);
    ot_f32_to_bf16_n(ha, fa, na);
    ot_f32_to_bf16_n(hb, fb, nb);
    gemm_args h = {M, N, K, ha, hb, hc, OT_BF16};
    ms = median_ms(gemm_thunk, &h, reps);
    ot_gemm_lowp_stats s;
    ot_gemm_lowp_stats_get(&s);
    printf("  bf16 oneDNN (%-24s) %8.2f ms  %7.1f GFLOP/s\n", s.impl, ms, flop / ms / 1e6);
    ot_gemm_lowp_force_f32(1);
    ms = median_ms(gemm_thunk, &h, reps);
    printf("  bf16 via f32 (convert+sgemm)  %8.2f ms  %7.1f GFLOP/s\n", ms, flop / ms / 1e6);
    ot_gemm_lowp_force_f32(0);
    ot_f32_to_f16_n(ha, fa, na);
    ot_f32_to_f16_n(hb, fb, nb);
    h.t = OT_F16;
    ms = median_ms(gemm_thunk, &h, reps);
    printf("  f16 via f32 (convert+sgemm)   %8.2f ms  %7.1f GFLOP/s\n", ms, flop / ms / 1e6);
    free(fa), free(fb), free(fc), free(ha), free(hb), free(hc);
}

/* Conversion bandwidth, single thread, 4M elements (16 MiB of f32: beyond the L2). */
static void bench_convert(int reps) {
    enum { N = 1 << 22 };
    float *f = malloc(N * 4);
    uint16_t *h = malloc(N * 2);
    if (!f || !h) exit(2);
    for (size_t i = 0; i < N; i++) f[i] = (float)i * 1e-3f - 2000.0f;
    int top = ot_lowp_isa();
    printf("conversion, 1 thread, %d elements: ns per element\n", N);
    printf("  level            f32->bf16  bf16->f32  f32->f16  f16->f32\n");
    for (int l = 0; l <= top; l++) {
        ot_lowp_force_isa(l);
        double t[4];
        for (int k = 0; k < 4; k++) {
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = omp_get_wtime();
                if (k == 0) ot_f32_to_bf16_n(h, f, N);
                if (k == 1) ot_bf16_to_f32_n(f, h, N);
                if (k == 2) ot_f32_to_f16_n(h, f, N);
                if (k == 3) ot_f16_to_f32_n(f, h, N);
                double dt = omp_get_wtime() - t0;
                if (dt < best) best = dt;
            }
            t[k] = best * 1e9 / N;
        }
        static const char *names[] = {"scalar", "avx2+f16c", "avx512", "avx512+bf16 insn"};
        printf("  %-16s %9.3f  %9.3f  %8.3f  %8.3f\n", names[l], t[0], t[1], t[2], t[3]);
    }
    ot_lowp_force_isa(-1);
    free(f), free(h);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 9;
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    ot_set_threads(threads);
    bench_shape(2048, 768, 3072, reps);
    bench_shape(2048, 768, 768, reps);
    omp_set_num_threads(1);
    bench_convert(reps);
    return 0;
}
