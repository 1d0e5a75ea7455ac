/* test_core.c — dtype conversion (round-to-nearest-even at every boundary), tensors, .npy
 * round trips and malformed .npy files, graph construction and topological sort. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/graph.h"
#include "core/npy.h"
#include "ot_test.h"

static void test_bf16(void) {
    CHECK(ot_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(ot_bf16_to_f32(0x3f80) == 1.0f);
    /* 1 + 2^-8 is exactly half-way between bf16 1.0 and 1.0078125: ties to even -> 1.0 */
    CHECK(ot_f32_to_bf16(1.00390625f) == 0x3f80);
    /* 1 + 3*2^-8 is half-way between 0x3f81 and 0x3f82: ties to even -> 0x3f82 */
    CHECK(ot_f32_to_bf16(1.01171875f) == 0x3f82);
    CHECK(ot_f32_to_bf16(1.0f + 1.0f / 128 + 1.0f / 4096) == 0x3f81); /* above half: up */
    CHECK(ot_f32_to_bf16(-2.0f) == 0xc000);
    CHECK(ot_f32_to_bf16(INFINITY) == 0x7f80);
    uint16_t nan = ot_f32_to_bf16(NAN);
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
    CHECK(ot_f32_to_bf16(3.4e38f) == 0x7f80); /* rounds past the largest bf16 to inf */
}

static void test_f16(void) {
    CHECK(ot_f32_to_f16(1.0f) == 0x3c00);
    CHECK(ot_f16_to_f32(0x3c00) == 1.0f);
    CHECK(ot_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(ot_f32_to_f16(65520.0f) == 0x7c00); /* half-way to 65536 rounds to even: inf */
    CHECK(ot_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(ot_f32_to_f16(ldexpf(1, -24)) == 0x0001); /* smallest subnormal */
    CHECK(ot_f32_to_f16(ldexpf(1, -25)) == 0x0000); /* exactly half of it: ties to even (0) */
    CHECK(ot_f32_to_f16(ldexpf(3, -26)) == 0x0001); /* 0.75 of it rounds up */
    CHECK(ot_f32_to_f16(ldexpf(3, -25)) == 0x0002); /* 1.5 subnormals: tie to even -> 2 */
    CHECK(ot_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie at normal precision -> even */
    CHECK(ot_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02);
    CHECK(ot_f16_to_f32(0x0001) == ldexpf(1, -24));
    CHECK(ot_f16_to_f32(0x8000) == 0.0f && signbit(ot_f16_to_f32(0x8000)));
    CHECK(isinf(ot_f16_to_f32(0x7c00)));
    CHECK(isnan(ot_f16_to_f32(0x7e00)));
    /* every finite f16 survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        if (ot_f32_to_f16(ot_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0);
}

static void test_convert(void) {
    float f[5] = {1.9f, -1.9f, 0.0f, NAN, 3e9f};
    int64_t i[5];
    ot_convert(i, OT_I64, f, OT_F32, 5);
    CHECK(i[0] == 1 && i[1] == -1 && i[2] == 0 && i[4] == 3000000000LL); /* truncation */
    uint8_t b[5];
    ot_convert(b, OT_BOOL, f, OT_F32, 5);
    CHECK(b[0] == 1 && b[1] == 1 && b[2] == 0 && b[3] == 1);
    int64_t big = (1LL << 53) + 1;
    int64_t back;
    ot_convert(&back, OT_I64, &big, OT_I64, 1);
    CHECK(back == big);
    CHECK(ot_dtype_size(OT_BF16) == 2 && ot_dtype_size(OT_STRING) == 0);
    CHECK(strcmp(ot_dtype_name(OT_F32), "float32") == 0);
}

static void test_npy_roundtrip(void) {
    char dir[] = "/tmp/ot_test_npyXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    int64_t dims[3] = {2, 0, 3};
    ot_tensor *t, *u;
    CHECK_OK(ot_tensor_new(&t, OT_F32, 3, dims));
    CHECK_OK(ot_npy_write(path, t));
    CHECK_OK(ot_npy_read(path, &u));
    CHECK(u && u->ndim == 3 && u->dims[1] == 0 && u->dtype == OT_F32);
    ot_tensor_free(t);
    ot_tensor_free(u);

    int64_t d2[2] = {3, 5};
    CHECK_OK(ot_tensor_new(&t, OT_I64, 2, d2));
    for (int k = 0; k < 15; k++) ((int64_t *)t->data)[k] = k * 1000003LL - 7;
    CHECK_OK(ot_npy_write(path, t));
    CHECK_OK(ot_npy_read(path, &u));
    CHECK(u && ot_shape_equal(u->ndim, u->dims, 2, d2) && memcmp(u->data, t->data, 15 * 8) == 0);
    ot_tensor_free(u);

    /* Truncated data and a damaged magic are errors naming the file. */
    FILE *f = fopen(path, "rb");
    unsigned char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(ot_npy_parse(buf, n - 8, "trunc.npy", &u) == OT_E_FORMAT && strstr(ot_last_error(), "trunc.npy"));
    buf[1] = 'X';
    CHECK(ot_npy_parse(buf, n, "magic.npy", &u) == OT_E_FORMAT && strstr(ot_last_error(), "magic.npy"));
    CHECK(ot_npy_read("/nonexistent/x.npy", &u) == OT_E_IO);
    ot_tensor_free(t);
    unlink(path);
    rmdir(dir);
}

static void test_toposort(void) {
    ot_graph *g;
    CHECK_OK(ot_graph_new(&g));
    int x, a, b, c;
    CHECK_OK(ot_graph_value(g, "x", &x));
    g->values[x].is_input = 1;
    CHECK_OK(ot_graph_value(g, "a", &a));
    CHECK_OK(ot_graph_value(g, "b", &b));
    CHECK_OK(ot_graph_value(g, "c", &c));
    /* Declared out of order: c = b * b, b = relu(a), a = neg(x) */
    int in_c[2] = {b, b}, in_b[1] = {a}, in_a[1] = {x};
    CHECK_OK(ot_graph_add_node(g, "Mul", "", "mul", in_c, 2, &c, 1, NULL));
    CHECK_OK(ot_graph_add_node(g, "Relu", "ai.onnx", "relu", in_b, 1, &b, 1, NULL));
    CHECK_OK(ot_graph_add_node(g, "Neg", "", "neg", in_a, 1, &a, 1, NULL));
    CHECK_OK(ot_graph_toposort(g));
    CHECK(strcmp(g->nodes[0].op_type, "Neg") == 0 && strcmp(g->nodes[2].op_type, "Mul") == 0);
    CHECK(strcmp(g->nodes[1].domain, "") == 0); /* ai.onnx normalised */
    CHECK(g->values[c].producer == 2);
    /* A cycle is reported. */
    int d;
    CHECK_OK(ot_graph_value(g, "d", &d));
    int in_cyc[1] = {d}, out_cyc[1] = {d};
    (void)out_cyc;
    int e;
    CHECK_OK(ot_graph_value(g, "e", &e));
    CHECK_OK(ot_graph_add_node(g, "Relu", "", "r1", in_cyc, 1, &e, 1, NULL));
    CHECK_OK(ot_graph_add_node(g, "Relu", "", "r2", &e, 1, &d, 1, NULL));
    CHECK(ot_graph_toposort(g) == OT_E_INVALID && strstr(ot_last_error(), "cycle"));
    ot_graph_free(g);
}

int main(void) {
    OT_RUN(test_bf16);
    OT_RUN(test_f16);
    OT_RUN(test_convert);
    OT_RUN(test_npy_roundtrip);
    OT_RUN(test_toposort);
    return OT_TEST_EXIT();
}
