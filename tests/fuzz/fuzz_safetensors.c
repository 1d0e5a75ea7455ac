/* fuzz_safetensors.c — libFuzzer target for the safetensors reader: any byte string must
 * either parse into a handle whose every view lies inside the input (or in an aligned copy)
 * or fail with a status; never crash, leak or read out of bounds. Every byte of every tensor
 * is read (so ASan sees an out-of-bounds view), each name is looked up again, and accepted
 * inputs are written back out and re-read, which must succeed and agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnxtune/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ot_safetensors *st = NULL;
    if (ot_safetensors_parse(data, size, "<fuzz>", &st) != OT_OK) return 0;
    int n = ot_safetensors_count(st);
    unsigned sum = 0;
    ot_named_tensor *nt = calloc((size_t)n + 1, sizeof *nt);
    for (int i = 0; i < n; i++) {
        const ot_tensor *t = ot_safetensors_tensor(st, i);
        const char *name = ot_safetensors_name(st, i);
        if (ot_safetensors_find(st, name) != t) abort();
        size_t nb = ot_tensor_nbytes(t);
        if (nb && (uintptr_t)t->data % ot_dtype_size(t->dtype)) abort(); /* views are aligned */
        for (size_t k = 0; k < nb; k++) sum += ((const unsigned char *)t->data)[k];
        nt[i].name = name;
        nt[i].t = t;
    }
    (void)ot_safetensors_meta(st, "format");

    /* Write it back (without metadata: the API cannot list the keys) and read that. */
    char path[64]; /* tmpfs where there is one: the writer fsyncs, which costs a disk */
    snprintf(path, sizeof path, "%s/fuzz_safetensors.%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (long)getpid());
    if (ot_safetensors_write(path, nt, n, NULL, 0) == OT_OK) {
        ot_safetensors *back = NULL;
        if (ot_safetensors_open(path, &back) != OT_OK || ot_safetensors_count(back) != n) abort();
        for (int i = 0; i < n; i++) {
            const ot_tensor *a = nt[i].t, *b = ot_safetensors_find(back, nt[i].name);
            if (!b || b->dtype != a->dtype || !ot_shape_equal(a->ndim, a->dims, b->ndim, b->dims) ||
                memcmp(a->data, b->data, ot_tensor_nbytes(a)) != 0)
                abort();
        }
        ot_safetensors_close(back);
        unlink(path);
    }
    free(nt);
    ot_safetensors_close(st);
    return (int)(sum & 0); /* keep the reads */
}
