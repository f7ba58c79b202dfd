/* The packed layout and the kernels: codes survive packing for every dtype and
 * awkward widths (padding included); ob_pack_weight keeps exactly the codes and
 * scales of the training quantiser; every kernel set this CPU runs gives the
 * same outputs, bit for bit, as a plain integer dot product over the codes,
 * for any number of tokens and any row range (the SIMD tiles and tails); the
 * float kernels agree with a double-precision sum. The portable set is forced
 * here like $ONEBIT_KERNELS=scalar would. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/kernels.h"
#include "onebit/quant.h"
#include "test_util.h"

static const ob_dtype qdtypes[] = {OB_DTYPE_TERNARY2, OB_DTYPE_BINARY1, OB_DTYPE_FOURBIT, OB_DTYPE_I8};
static const ob_kernel_isa isas[] = {OB_ISA_SCALAR, OB_ISA_AVX2, OB_ISA_AVXVNNI};
#define NUM_ISAS (sizeof isas / sizeof *isas)

static uint64_t test_seed(void) {
    static uint64_t seed;
    if (!seed)
        seed = tu_seed("test_infer_pack");
    return seed;
}

static int8_t random_code(ob_rng *rng, ob_dtype dt) {
    switch (dt) {
    case OB_DTYPE_TERNARY2: return (int8_t)((int)ob_rng_below(rng, 3) - 1);
    case OB_DTYPE_BINARY1: return ob_rng_below(rng, 2) ? 1 : -1;
    case OB_DTYPE_FOURBIT: return (int8_t)((int)ob_rng_below(rng, 15) - 7);
    default: return (int8_t)((int)ob_rng_below(rng, 255) - 127);
    }
}

typedef struct {
    ob_packed_tensor t;
    int8_t *codes;
    uint8_t *data;
    float *scales;
} packed;

static void make_packed(packed *p, ob_dtype dt, int rows, int cols, ob_rng *rng) {
    p->codes = malloc((size_t)rows * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        p->codes[i] = random_code(rng, dt);
    p->data = ob_aligned_alloc(ob_packed_row_bytes(dt, cols) * rows + 1);
    int ns = ob_packed_num_scales(dt, rows);
    p->scales = malloc((size_t)ns * sizeof(float));
    for (int i = 0; i < ns; i++)
        p->scales[i] = (float)(0.01 + ob_rng_uniform(rng));
    assert_ok(ob_pack_codes(dt, p->codes, rows, cols, p->data));
    ob_packed_tensor_init(&p->t, dt, rows, cols, p->data, p->scales);
}

static void free_packed(packed *p) {
    free(p->codes);
    ob_aligned_free(p->data);
    free(p->scales);
}

static void test_codes_round_trip(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed());
    const int widths[] = {1, 31, 32, 127, 128, 255, 256, 257, 520, 768};
    for (size_t d = 0; d < 4; d++) {
        for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
            packed p;
            int rows = 3, cols = widths[w];
            make_packed(&p, qdtypes[d], rows, cols, &rng);
            assert_int_equal(p.t.cols_padded % 256, 0);
            assert_true(p.t.cols_padded >= cols && p.t.cols_padded < cols + 256);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < p.t.cols_padded; j++) {
                    int want = j < cols ? p.codes[(size_t)r * cols + j] : (qdtypes[d] == OB_DTYPE_BINARY1 ? -1 : 0);
                    if (ob_packed_code(&p.t, r, j) != want)
                        fail_msg("%s [%d, %d]: code (%d, %d) = %d, packed %d", ob_dtype_name(qdtypes[d]), rows, cols,
                                 r, j, ob_packed_code(&p.t, r, j), want);
                }
            free_packed(&p);
        }
    }
    /* Codes outside a dtype's range are refused. */
    int8_t bad[4] = {0, 2, 0, 0};
    uint8_t out[64];
    assert_fails_with(ob_pack_codes(OB_DTYPE_TERNARY2, bad, 1, 4, out), OB_ERR_INVALID_ARG, "code 2");
    bad[1] = 0;
    assert_fails_with(ob_pack_codes(OB_DTYPE_BINARY1, bad, 1, 4, out), OB_ERR_INVALID_ARG, "code 0");
}

/* ob_pack_weight stores the training quantiser's codes and scales. */
static void test_pack_weight_matches_quantiser(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 1);
    const ob_quant_mode modes[] = {OB_MODE_TERNARY, OB_MODE_BINARY, OB_MODE_FOURBIT, OB_MODE_EIGHTBIT};
    for (size_t k = 0; k < 4; k++) {
        for (int dyn = 0; dyn < 2; dyn++) {
            int rows = 5, cols = 300;
            float *w = malloc((size_t)rows * cols * sizeof(float));
            ob_rng_fill_normal(&rng, w, (size_t)rows * cols, 0, 0.05f);
            int8_t *codes = malloc((size_t)rows * cols);
            float scales[5], wq_row[300];
            ob_quant_weight_hard(modes[k], dyn, 0.08f, w, rows, cols, codes, scales, NULL, NULL);
            float *wq = malloc((size_t)rows * cols * sizeof(float));
            ob_quant_weight_hard(modes[k], dyn, 0.08f, w, rows, cols, NULL, NULL, wq, NULL);
            ob_dtype dt = ob_packed_dtype_for_mode(modes[k]);
            uint8_t *data = malloc(ob_packed_row_bytes(dt, cols) * rows);
            float ps[5];
            assert_ok(ob_pack_weight(modes[k], dyn, 0.08f, w, rows, cols, data, ps));
            ob_packed_tensor t;
            ob_packed_tensor_init(&t, dt, rows, cols, data, ps);
            for (int r = 0; r < rows; r++) {
                assert_true(ps[t.num_scales == 1 ? 0 : r] == scales[r]);
                ob_packed_row_to_f32(&t, r, wq_row);
                for (int j = 0; j < cols; j++) {
                    assert_int_equal(ob_packed_code(&t, r, j), codes[(size_t)r * cols + j]);
                    /* Dequantised rows are the training forward's W_q, exactly. */
                    assert_true(wq_row[j] == wq[(size_t)r * cols + j]);
                }
            }
            free(w), free(codes), free(wq), free(data);
        }
    }
}

/* Σ code·x·scale / s with exact integer sums: what every kernel must return. */
static float reference_output(const packed *p, int r, const int8_t *x, double inv_s) {
    int64_t acc = 0;
    for (int j = 0; j < p->t.cols; j++)
        acc += (int64_t)p->codes[(size_t)r * p->t.cols + j] * x[j];
    return ob_q_output(&p->t, r, (int32_t)acc, inv_s);
}

static void test_kernels_exact(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 2);
    const int shapes[][2] = {{1, 40}, {7, 256}, {13, 300}, {33, 768}, {4, 2048}, {9, 6912}};
    for (size_t d = 0; d < 4; d++) {
        for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
            int rows = shapes[sh][0], cols = shapes[sh][1];
            packed p;
            make_packed(&p, qdtypes[d], rows, cols, &rng);
            for (int n = 1; n <= 9; n += (n < 5 ? 1 : 4)) {
                int ld = p.t.cols_padded;
                int8_t *x = calloc((size_t)n * ld, 1);
                int32_t sums[9];
                double inv[9];
                float *y = malloc((size_t)n * rows * sizeof(float));
                for (int t = 0; t < n; t++) {
                    sums[t] = 0;
                    for (int j = 0; j < cols; j++) {
                        x[(size_t)t * ld + j] = (int8_t)((int)ob_rng_below(&rng, 255) - 127);
                        sums[t] += x[(size_t)t * ld + j];
                    }
                    inv[t] = 1.0 / (double)(float)(1 + 100 * ob_rng_uniform(&rng));
                }
                ob_qact qa = {x, sums, inv, n, ld};
                for (size_t k = 0; k < NUM_ISAS; k++) {
                    const ob_kernels *kern = ob_kernels_get(isas[k]);
                    if (!kern)
                        continue;
                    /* Two calls over a split row range exercise starts and ends of tiles. */
                    int split = rows / 2 | 1;
                    if (split > rows)
                        split = rows;
                    memset(y, 0xff, (size_t)n * rows * sizeof(float));
                    kern->qgemm(&p.t, &qa, 0, split, y, rows);
                    kern->qgemm(&p.t, &qa, split, rows, y, rows);
                    for (int t = 0; t < n; t++)
                        for (int r = 0; r < rows; r++) {
                            float want = reference_output(&p, r, x + (size_t)t * ld, inv[t]);
                            if (memcmp(&want, &y[(size_t)t * rows + r], sizeof want) != 0)
                                fail_msg("%s kernels, %s [%d, %d], %d tokens: y[%d][%d] = %.9g, want %.9g",
                                         ob_kernel_isa_name(isas[k]), ob_dtype_name(qdtypes[d]), rows, cols, n, t, r,
                                         (double)y[(size_t)t * rows + r], (double)want);
                        }
                }
                free(x), free(y);
            }
            free_packed(&p);
        }
    }
}

static void test_float_kernels(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 3);
    const int shapes[][2] = {{5, 7}, {9, 64}, {6, 300}};
    for (int half = 0; half < 2; half++) {
        for (size_t sh = 0; sh < 3; sh++) {
            int rows = shapes[sh][0], cols = shapes[sh][1], n = 6;
            ob_dtype dt = half ? OB_DTYPE_F16 : OB_DTYPE_F32;
            float *w = malloc((size_t)rows * cols * sizeof(float)), *x = malloc((size_t)n * cols * sizeof(float));
            ob_rng_fill_normal(&rng, w, (size_t)rows * cols, 0, 1);
            ob_rng_fill_normal(&rng, x, (size_t)n * cols, 0, 1);
            void *data = malloc(ob_packed_row_bytes(dt, cols) * rows);
            if (half)
                assert_ok(ob_pack_weight(OB_MODE_F16, false, 0, w, rows, cols, data, NULL));
            else
                memcpy(data, w, (size_t)rows * cols * sizeof(float));
            ob_packed_tensor t;
            ob_packed_tensor_init(&t, dt, rows, cols, data, NULL);
            float *y = malloc((size_t)n * rows * sizeof(float)), *row = malloc((size_t)cols * sizeof(float));
            for (size_t k = 0; k < NUM_ISAS; k++) {
                const ob_kernels *kern = ob_kernels_get(isas[k]);
                if (!kern)
                    continue;
                kern->fgemm(&t, x, n, cols, 0, rows, y, rows);
                for (int r = 0; r < rows; r++) {
                    ob_packed_row_to_f32(&t, r, row);
                    for (int i = 0; i < n; i++) {
                        double want = 0, mag = 0;
                        for (int j = 0; j < cols; j++) {
                            want += (double)row[j] * x[(size_t)i * cols + j];
                            mag += fabs((double)row[j] * x[(size_t)i * cols + j]);
                        }
                        assert_true(fabs(y[(size_t)i * rows + r] - want) <= 1e-6 * mag);
                    }
                }
                float a[300], b[300];
                for (int j = 0; j < cols; j++)
                    a[j] = x[j], b[j] = y[j % rows];
                double want = 0, mag = 0;
                for (int j = 0; j < cols; j++)
                    want += (double)a[j] * b[j], mag += fabs((double)a[j] * b[j]);
                assert_true(fabs(kern->dot(a, b, cols) - want) <= 1e-6 * mag);
            }
            free(w), free(x), free(data), free(y), free(row);
        }
    }
}

/* $ONEBIT_KERNELS picks the set; an unsupported name falls back to CPUID. */
static void test_isa_selection(void **state) {
    (void)state;
    assert_true(ob_kernel_isa_supported(OB_ISA_SCALAR));
    setenv("ONEBIT_KERNELS", "scalar", 1);
    assert_int_equal(ob_kernel_isa_detect(), OB_ISA_SCALAR);
    tu_capture_begin();
    setenv("ONEBIT_KERNELS", "nonsense", 1);
    ob_kernel_isa best = ob_kernel_isa_detect();
    assert_true(strstr(tu_captured(), "ONEBIT_KERNELS=nonsense") != NULL);
    tu_capture_end();
    unsetenv("ONEBIT_KERNELS");
    assert_int_equal(ob_kernel_isa_detect(), best);
    assert_non_null(ob_kernels_get(OB_ISA_AUTO));
    ob_kernel_isa isa;
    assert_true(ob_kernel_isa_parse("avx2", &isa) && isa == OB_ISA_AVX2);
    assert_false(ob_kernel_isa_parse("neon", &isa));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_round_trip),     cmocka_unit_test(test_pack_weight_matches_quantiser),
        cmocka_unit_test(test_kernels_exact),        cmocka_unit_test(test_float_kernels),
        cmocka_unit_test(test_isa_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
