/* linalg_lowp_dnnl.c — bf16 GEMMs on oneDNN's matmul primitive (behind linalg_lowp.c).
 *
 * Owns: the process's one oneDNN CPU engine and stream, and a cache of matmul primitives
 * keyed by everything a primitive bakes in: shape (M, N, K, leading dims, transposes,
 * batch count and batch strides), the epilogue (alpha as an output scale, beta as a sum
 * post-op over a destination pre-filled with C) and the OpenMP thread count
 * (omp_get_max_threads() of the calling thread, which is what ot_set_threads sets and what
 * oneDNN's OpenMP runtime sizes its parallel regions by). Numerics: bf16 products
 * accumulate in f32 inside oneDNN; alpha * acc + beta * C is formed in f32 and rounded once
 * (nearest even) to the bf16 destination.
 *
 * Primitives are created once per key and never destroyed (a model has a few dozen GEMM
 * shapes; the cache holds OT_DNNL_CACHE of them and runs further shapes uncached). A key
 * for which oneDNN offers only its reference implementation ("ref:*", slow) or no
 * implementation at all is cached as "declined" and the caller takes the f32 path.
 *
 * Thread safety: one mutex guards the cache and every execution, so the shared stream,
 * memory objects and oneDNN's library-managed scratchpad are never used by two threads at
 * once; the executor runs one op at a time, so this costs nothing there. On this project's
 * Sapphire Rapids CPU oneDNN 2.6 picks brg:avx512_core_amx_bf16 by default (no
 * ONEDNN_MAX_CPU_ISA needed; it requests the AMX tile permission itself). */
#include "linalg_internal.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define OT_DNNL_CACHE 256

typedef struct dnnl_key {
    int64_t M, N, K, lda, ldb;
    int64_t batch, a_bs, b_bs; /* batch 0: a 2-D primitive; a stride 0 broadcasts */
    int32_t trans_a, trans_b, has_c, nthr;
    float alpha, beta;
} dnnl_key;

typedef struct dnnl_entry {
    dnnl_key key;
    int declined; /* no native kernel: callers take the f32 path */
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst; /* handles are set per call */
    char impl[64];
} dnnl_entry;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static int engine_ok;
static dnnl_entry cache[OT_DNNL_CACHE];
static int n_cache;

static void init_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return;
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(engine);
        return;
    }
    engine_ok = 1;
}

static void entry_free(dnnl_entry *e) {
    if (e->src) dnnl_memory_destroy(e->src);
    if (e->wei) dnnl_memory_destroy(e->wei);
    if (e->dst) dnnl_memory_destroy(e->dst);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->pd) dnnl_primitive_desc_destroy(e->pd);
    memset(e, 0, sizeof *e);
}

/* Builds the primitive for k into e (e->key set). Returns 0 with e->declined set when
 * oneDNN has no native kernel; any oneDNN failure counts as "declined". */
static void entry_build(dnnl_entry *e) {
    const dnnl_key *k = &e->key;
    dnnl_memory_desc_t ms, mw, md;
    int nd = k->batch ? 3 : 2;
    int64_t ba = k->batch && k->a_bs ? k->batch : 1, bb = k->batch && k->b_bs ? k->batch : 1;
    int64_t sa_ext = k->trans_a ? k->K * k->lda : k->M * k->lda, sb_ext = k->trans_b ? k->N * k->ldb : k->K * k->ldb;
    dnnl_dims_t ds, dw, dd, ss, sw, sd;
    int i = 0;
    if (nd == 3) {
        ds[0] = ba, ss[0] = k->a_bs ? k->a_bs : sa_ext;
        dw[0] = bb, sw[0] = k->b_bs ? k->b_bs : sb_ext;
        dd[0] = k->batch, sd[0] = k->M * k->N;
        i = 1;
    }
    ds[i] = k->M, ds[i + 1] = k->K;
    ss[i] = k->trans_a ? 1 : k->lda, ss[i + 1] = k->trans_a ? k->lda : 1;
    dw[i] = k->K, dw[i + 1] = k->N;
    sw[i] = k->trans_b ? 1 : k->ldb, sw[i + 1] = k->trans_b ? k->ldb : 1;
    dd[i] = k->M, dd[i + 1] = k->N;
    sd[i] = k->N, sd[i + 1] = 1;
    e->declined = 1;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_matmul_desc_t mm;
    if (dnnl_memory_desc_init_by_strides(&ms, nd, ds, dnnl_bf16, ss) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&mw, nd, dw, dnnl_bf16, sw) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&md, nd, dd, dnnl_bf16, sd) != dnnl_success ||
        dnnl_matmul_desc_init(&mm, &ms, &mw, NULL, &md) != dnnl_success || dnnl_primitive_attr_create(&attr) != dnnl_success)
        goto done;
    if (k->alpha != 1.0f && dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) != dnnl_success) goto done;
    if (k->has_c) {
        if (dnnl_post_ops_create(&po) != dnnl_success || dnnl_post_ops_append_sum(po, k->beta) != dnnl_success ||
            dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success)
            goto done;
    }
    if (dnnl_primitive_desc_create(&e->pd, &mm, attr, engine, NULL) != dnnl_success) {
        e->pd = NULL;
        goto done;
    }
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
        strncmp(impl, "ref", 3) == 0)
        goto done;
    snprintf(e->impl, sizeof e->impl, "%s", impl);
    if (dnnl_primitive_create(&e->prim, e->pd) != dnnl_success) {
        e->prim = NULL;
        goto done;
    }
    if (dnnl_memory_create(&e->src, &ms, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->wei, &mw, engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->dst, &md, engine, DNNL_MEMORY_NONE) != dnnl_success)
        goto done;
    e->declined = 0;
done:
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (e->declined) {
        dnnl_key keep = e->key;
        entry_free(e);
        e->key = keep;
        e->declined = 1;
    }
}

/* The cached entry for k, building it on first use; *tmp is used (and must be freed by the
 * caller with entry_free) when the cache is full. Called with the lock held. */
static dnnl_entry *entry_get(const dnnl_key *k, dnnl_entry *tmp) {
    for (int i = 0; i < n_cache; i++)
        if (memcmp(&cache[i].key, k, sizeof *k) == 0) return &cache[i];
    dnnl_entry *e = n_cache < OT_DNNL_CACHE ? &cache[n_cache++] : tmp;
    memset(e, 0, sizeof *e);
    e->key = *k;
    entry_build(e);
    return e;
}

/* Executes e on one batch item's pointers. Called with the lock held. */
static ot_status entry_exec(dnnl_entry *e, const void *a, const void *b, void *c) {
    if (dnnl_memory_set_data_handle(e->src, (void *)a) != dnnl_success ||
        dnnl_memory_set_data_handle(e->wei, (void *)b) != dnnl_success ||
        dnnl_memory_set_data_handle(e->dst, c) != dnnl_success)
        return ot_errorf(OT_E_INTERNAL, "oneDNN: cannot attach GEMM buffers");
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst}};
    dnnl_status_t s = dnnl_primitive_execute(e->prim, stream, 3, args);
    if (s == dnnl_success) s = dnnl_stream_wait(stream);
    if (s != dnnl_success) return ot_errorf(OT_E_INTERNAL, "oneDNN matmul (%s) failed with status %d", e->impl, (int)s);
    return OT_OK;
}

static dnnl_key key_2d(const ot_gemm_batch *g, int64_t M, const ot_gemm_epi *epi) {
    dnnl_key k;
    memset(&k, 0, sizeof k); /* padding too: keys are compared with memcmp */
    k.M = M, k.N = g->N, k.K = g->K, k.lda = g->lda, k.ldb = g->ldb;
    k.trans_a = g->trans_a, k.trans_b = g->trans_b;
    k.nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    k.alpha = epi ? epi->alpha : 1.0f;
    k.has_c = epi && epi->c && epi->beta != 0.0f;
    k.beta = k.has_c ? epi->beta : 0.0f;
    return k;
}

/* See linalg_lowp.c: g is coalesced, nbatch >= 1, M, N, K >= 1; with a C term Y already
 * holds C broadcast to [M, N]. *ran = 0 (and nothing written) when oneDNN declines. */
ot_status ot_dnnl_bf16_gemm(const ot_gemm_batch *g, int64_t nbatch, const ot_gemm_epi *epi, int *ran,
                            char impl[64]) {
    *ran = 0;
    pthread_once(&once, init_engine);
    if (!engine_ok) return OT_OK;
    const size_t esz = 2;
    const char *a = g->a, *b = g->b;
    char *c = g->c;
    ot_status st = OT_OK;
    dnnl_entry tmp, *e = NULL;
    memset(&tmp, 0, sizeof tmp);
    pthread_mutex_lock(&lock);
    if (g->nb == 0) {
        dnnl_key k = key_2d(g, g->M, epi);
        e = entry_get(&k, &tmp);
        if (!e->declined) st = entry_exec(e, a, b, c);
    } else if (g->nb == 1 && g->b_bstride[0] == 0 && !g->trans_a && g->a_bstride[0] == g->M * g->lda) {
        /* [B, S, K] x [K, N]: one GEMM of B*S rows */
        dnnl_key k = key_2d(g, g->bdims[0] * g->M, epi);
        e = entry_get(&k, &tmp);
        if (!e->declined) st = entry_exec(e, a, b, c);
    } else {
        if (g->nb == 1) { /* one batched primitive, broadcasting by a batch dim of 1 */
            dnnl_key k = key_2d(g, g->M, epi);
            k.batch = g->bdims[0], k.a_bs = g->a_bstride[0], k.b_bs = g->b_bstride[0];
            e = entry_get(&k, &tmp);
            if (!e->declined) st = entry_exec(e, a, b, c);
        }
        if (!e || e->declined) { /* a 2-D primitive per batch item */
            if (e == &tmp) entry_free(&tmp);
            dnnl_key k = key_2d(g, g->M, epi);
            e = entry_get(&k, &tmp);
            for (int64_t bi = 0; !e->declined && st == OT_OK && bi < nbatch; bi++) {
                int64_t ao, bo;
                ot_gemm_batch_offsets(g->nb, g->bdims, g->a_bstride, g->b_bstride, bi, &ao, &bo);
                st = entry_exec(e, a + ao * (int64_t)esz, b + bo * (int64_t)esz, c + bi * g->M * g->N * (int64_t)esz);
            }
        }
    }
    if (!e->declined) {
        *ran = 1;
        snprintf(impl, 64, "%s", e->impl);
    }
    if (e == &tmp) entry_free(&tmp);
    pthread_mutex_unlock(&lock);
    return st;
}
