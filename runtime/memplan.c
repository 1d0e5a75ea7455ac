/* memplan.c — arena layout by liveness.
 *
 * Every BUFFER value lives from the step that writes it to the last step that reads it (or
 * to the end, for graph outputs). Buffers are placed largest first, each at the lowest
 * 64-byte-aligned offset that does not overlap a placed buffer whose lifetime intersects
 * its own ("greedy by size", as TFLite's planner does): near-optimal for the chain-shaped
 * lifetimes of transformer graphs and O(n^2) in buffers, which is negligible at plan time. */
#include <stdlib.h>

#include "runtime/plan.h"

#define OT_ARENA_ALIGN 64

typedef struct {
    int v;
    size_t size;
} buf_ref;

static int by_size_desc(const void *a, const void *b) {
    const buf_ref *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->v - y->v; /* deterministic */
}

static size_t align_up(size_t n) { return (n + OT_ARENA_ALIGN - 1) & ~(size_t)(OT_ARENA_ALIGN - 1); }

ot_status ot_memplan(ot_plan *p) {
    int nv = p->g->n_values, nb = 0;
    buf_ref *bufs = malloc((size_t)(nv ? nv : 1) * sizeof *bufs);
    int *placed = malloc((size_t)(nv ? nv : 1) * sizeof *placed);
    if (!bufs || !placed) {
        free(bufs), free(placed);
        return ot_errorf(OT_E_NOMEM, "out of memory planning buffers");
    }
    size_t naive = 0, peak = 0;
    for (int v = 0; v < nv; v++)
        if (p->vals[v].kind == OT_VAL_BUFFER) {
            bufs[nb].v = v;
            bufs[nb].size = align_up(ot_tensor_nbytes(&p->vals[v].t) ? ot_tensor_nbytes(&p->vals[v].t) : 1);
            naive += bufs[nb].size;
            nb++;
        }
    qsort(bufs, (size_t)nb, sizeof *bufs, by_size_desc);
    int n_placed = 0;
    for (int i = 0; i < nb; i++) {
        ot_plan_val *a = &p->vals[bufs[i].v];
        size_t off = 0;
        /* Move past every conflicting placed buffer until a gap fits; placed[] is kept
         * sorted by offset so one pass suffices. */
        for (int j = 0; j < n_placed; j++) {
            const ot_plan_val *b = &p->vals[placed[j]];
            int overlap_time = a->def <= b->last && b->def <= a->last;
            if (!overlap_time) continue;
            size_t b_end = b->offset + align_up(ot_tensor_nbytes(&b->t) ? ot_tensor_nbytes(&b->t) : 1);
            if (off + bufs[i].size <= b->offset) break; /* fits before b */
            if (b_end > off) off = b_end;
        }
        a->offset = off;
        if (off + bufs[i].size > peak) peak = off + bufs[i].size;
        int k = n_placed++; /* insert sorted by offset */
        while (k > 0 && p->vals[placed[k - 1]].offset > off) {
            placed[k] = placed[k - 1];
            k--;
        }
        placed[k] = bufs[i].v;
    }
    free(bufs), free(placed);
    p->stats.arena_bytes = peak;
    p->stats.naive_bytes = naive;
    return OT_OK;
}
