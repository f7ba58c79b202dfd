/* tensor module: the dtype table, shape arithmetic against 128-bit products,
 * and half-precision conversions checked bit for bit against numpy and a
 * value-based bfloat16 rounding (tests/ref/half_ref.py), against the CPU's F16C
 * instructions where present, over random and boundary inputs. Set
 * ONEBIT_TEST_SEED to replay a run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "onebit/tensor.h"
#include "test_util.h"

static uint64_t test_seed(void) {
    static uint64_t seed;
    if (!seed)
        seed = tu_seed("test_tensor") | 1;
    return seed;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_dtype_table(void **state) {
    (void)state;
    for (int d = 0; d < OB_DTYPE_COUNT; d++) {
        ob_dtype back;
        assert_true(ob_dtype_parse(ob_dtype_name(d), &back));
        assert_int_equal(back, d);
        size_t size = ob_dtype_size(d);
        int bits = ob_dtype_bits(d);
        assert_true(bits > 0);
        /* Byte-sized types: bits = 8 x size; packed ones: size 0, bits below 8. */
        if (size)
            assert_int_equal((size_t)bits, 8 * size);
        else
            assert_true(bits < 8);
    }
    ob_dtype out;
    assert_false(ob_dtype_parse("f32", &out));
    assert_false(ob_dtype_parse("", &out));
    assert_false(ob_dtype_parse("F64", &out));
    assert_string_equal(ob_dtype_name(OB_DTYPE_COUNT), "?");
    assert_int_equal(ob_dtype_size(OB_DTYPE_COUNT), 0);
    assert_int_equal(ob_dtype_bits((ob_dtype)-1), 0);
}

/* The exact product, saturated just above INT64_MAX, as the reference. */
static __int128 exact_numel(int ndim, const int64_t *shape) {
    __int128 n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            return 0;
    for (int i = 0; i < ndim; i++) {
        n *= shape[i];
        if (n > (__int128)INT64_MAX)
            return (__int128)INT64_MAX + 1;
    }
    return n;
}

static void test_shape_numel(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed());
    int overflowed = 0, zero = 0;
    for (int iter = 0; iter < 200000; iter++) {
        int ndim = (int)ob_rng_below(&rng, OB_MAX_DIMS + 1);
        int64_t shape[OB_MAX_DIMS];
        for (int i = 0; i < ndim; i++) {
            /* Dimensions of every magnitude, so that products straddle 2^63. */
            shape[i] = (int64_t)(ob_rng_u64(&rng) >> 1 >> ob_rng_below(&rng, 63));
            if (ob_rng_below(&rng, 20) == 0)
                shape[i] = 0;
        }
        __int128 want = exact_numel(ndim, shape);
        int64_t got = ob_shape_numel(ndim, shape);
        if (want > (__int128)INT64_MAX) {
            assert_int_equal(got, -1);
            overflowed++;
        } else {
            assert_true((__int128)got == want);
            zero += got == 0;
        }
        if (ndim) { /* any negative dimension is invalid */
            shape[ob_rng_below(&rng, (uint64_t)ndim)] = -1 - (int64_t)ob_rng_below(&rng, 1000);
            assert_int_equal(ob_shape_numel(ndim, shape), -1);
        }
    }
    assert_true(overflowed > 1000 && zero > 1000);
    int64_t one = 1;
    assert_int_equal(ob_shape_numel(0, NULL), 1);
    assert_int_equal(ob_shape_numel(-1, &one), -1);
    int64_t nine[OB_MAX_DIMS + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(ob_shape_numel(OB_MAX_DIMS + 1, nine), -1);
}

static void test_dtype_bytes_for(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 1);
    for (int iter = 0; iter < 100000; iter++) {
        ob_dtype d = (ob_dtype)ob_rng_below(&rng, OB_DTYPE_COUNT);
        int64_t numel = (int64_t)(ob_rng_u64(&rng) >> 1 >> ob_rng_below(&rng, 63));
        __int128 want = ((__int128)numel * ob_dtype_bits(d) + 7) / 8;
        size_t got = ob_dtype_bytes_for(d, numel);
        if (want >= (__int128)SIZE_MAX)
            assert_true(got == SIZE_MAX);
        else
            assert_true((__int128)got == want);
    }
    assert_true(ob_dtype_bytes_for(OB_DTYPE_F32, -1) == SIZE_MAX);
    assert_true(ob_dtype_bytes_for(OB_DTYPE_COUNT, 1) == SIZE_MAX);
    assert_true(ob_dtype_bytes_for(OB_DTYPE_I64, INT64_MAX) == SIZE_MAX);
}

/* Runs tests/ref/half_ref.py; skips the test when numpy is absent. */
static void run_half_ref(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/half_ref.py %s", tu_python(), getenv("ONEBIT_SOURCE_DIR"), args);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc == 77) /* the independent reference is the test: missing is a failure */
        fail_msg("the Python reference needs numpy: run scripts/install-deps.sh");
    if (rc != 0)
        fail_msg("%s failed (%d): %s", cmd, rc, out ? out : "");
    free(out);
}

static void *read_all(const char *path, size_t *size) {
    char *data;
    assert_ok(ob_read_file(path, &data, size));
    return data;
}

static void test_widen_against_numpy(void **state) {
    (void)state;
    char *dir = tu_make_temp_dir();
    char *out = ob_path_join(dir, "widen.bin");
    char args[4200];
    snprintf(args, sizeof args, "widen %s", out);
    run_half_ref(args);
    size_t size;
    uint32_t *ref = read_all(out, &size);
    assert_int_equal(size, 2 * 65536 * 4);
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t f16 = bits_of(ob_f16_to_f32((uint16_t)h));
        uint32_t bf16 = bits_of(ob_bf16_to_f32((uint16_t)h));
        if (f16 != ref[h])
            fail_msg("f16 0x%04x -> 0x%08x, numpy 0x%08x", h, f16, ref[h]);
        if (bf16 != ref[65536 + h])
            fail_msg("bf16 0x%04x -> 0x%08x, reference 0x%08x", h, bf16, ref[65536 + h]);
    }
    free(ref);
    free(out);
    tu_remove_tree(dir);
    free(dir);
}

/* float32 bit patterns: uniform random ones (every class, NaN included), ones
 * whose exponent is near the float16 range, and exact ties and near-ties for
 * both target formats in the normal and subnormal ranges. */
static uint32_t *narrow_inputs(ob_rng *rng, size_t *count) {
    size_t n = 1 << 20, k = 0;
    uint32_t *x = malloc(n * sizeof *x);
    assert_non_null(x);
    while (k < n) {
        uint32_t sign = (uint32_t)ob_rng_below(rng, 2) << 31;
        uint32_t mant = ob_rng_u32(rng) & 0x7fffff;
        uint32_t v;
        switch (ob_rng_below(rng, 6)) {
        case 0: v = ob_rng_u32(rng); break;
        case 1: v = sign | (uint32_t)(95 + ob_rng_below(rng, 50)) << 23 | mant; break; /* around f16 */
        case 2: v = sign | (uint32_t)(95 + ob_rng_below(rng, 50)) << 23 | (mant & ~0x1fffu) | 0x1000; break;
        case 3: { /* f16 subnormal: tie at the rounding position for this exponent */
            uint32_t e = 102 + (uint32_t)ob_rng_below(rng, 11);
            uint32_t shift = 126 - e; /* bits of the 24-bit significand rounded away */
            uint32_t half = 1u << (shift - 1);
            v = sign | e << 23 | ((((mant | 0x800000) & ~((half << 1) - 1)) | half) & 0x7fffff);
            break;
        }
        case 4: v = (ob_rng_u32(rng) & 0xffff0000u) | 0x8000; break; /* bf16 tie */
        default: v = ob_rng_u32(rng) ^ (uint32_t)ob_rng_below(rng, 3); break;
        }
        /* Nudge some ties by one unit either way. */
        if (ob_rng_below(rng, 4) == 0)
            v += ob_rng_below(rng, 2) ? 1 : (uint32_t)-1;
        x[k++] = v;
    }
    /* Boundaries, as bit patterns: the float16 max 65504 and the overflow
     * threshold 65520, the smallest normal 2^-14 and subnormal 2^-24, the zero
     * threshold 2^-25, the float32 extremes; each with its neighbours. */
    const uint32_t edges[] = {0x477fe000, 0x477ff000, 0x38800000, 0x33800000, 0x33000000, 0x7f7fffff,
                              0x00000001, 0x00800000, 0x7f800000, 0x7fc00000, 0x7f800001, 0};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
        for (uint32_t s = 0; s < 2; s++)
            for (int d = -2; d <= 2; d++)
                x[(i * 10 + s * 5 + (size_t)(d + 2)) % n] = (s << 31) | (edges[i] + (uint32_t)d);
    *count = n;
    return x;
}

static bool f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

static void test_narrow_against_numpy(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 2);
    size_t n;
    uint32_t *x = narrow_inputs(&rng, &n);
    char *dir = tu_make_temp_dir();
    char *in = tu_write_file(dir, "in.bin", x, n * 4);
    char *out = ob_path_join(dir, "out.bin");
    char args[8400];
    snprintf(args, sizeof args, "narrow %s %s", in, out);
    run_half_ref(args);
    size_t size;
    uint16_t *ref = read_all(out, &size);
    assert_int_equal(size, 2 * n * 2);
    size_t nans = 0, subnormal = 0;
    for (size_t i = 0; i < n; i++) {
        float f = float_of(x[i]);
        uint16_t h = ob_f32_to_f16(f), b = ob_f32_to_bf16(f);
        if (isnan(f)) {
            /* numpy keeps NaN payloads without quietening; we quieten as F16C
             * does (checked in test_f16c_agrees): compare class and sign. */
            assert_true(f16_is_nan(h));
            assert_int_equal(h & 0x8000, ref[i] & 0x8000);
            nans++;
        } else if (h != ref[i]) {
            fail_msg("f16(0x%08x) = 0x%04x, numpy 0x%04x", x[i], h, ref[i]);
        }
        subnormal += (h & 0x7c00) == 0 && (h & 0x3ff);
        if (b != ref[n + i])
            fail_msg("bf16(0x%08x) = 0x%04x, reference 0x%04x", x[i], b, ref[n + i]);
    }
    assert_true(nans > 100 && subnormal > 10000);
    free(ref);
    free(x);
    free(in);
    free(out);
    tu_remove_tree(dir);
    free(dir);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

/* CPUID F16C, and the OS saving AVX state (F16C is VEX-encoded); clang 14's
 * __builtin_cpu_supports does not know "f16c". */
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C) || !(c & bit_OSXSAVE))
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}
#endif

/* Where the CPU has F16C, the scalar code must agree with it bit for bit,
 * NaN payloads included (the instruction quietens signalling NaNs on widening,
 * which our exact widening does not). */
static void test_f16c_agrees(void **state) {
    (void)state;
#if defined(__x86_64__) || defined(__i386__)
    if (!cpu_has_f16c())
        skip();
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 3);
    size_t n;
    uint32_t *x = narrow_inputs(&rng, &n);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = hw_f32_to_f16(float_of(x[i])), got = ob_f32_to_f16(float_of(x[i]));
        if (want != got)
            fail_msg("f16(0x%08x) = 0x%04x, F16C 0x%04x", x[i], got, want);
    }
    free(x);
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t got = bits_of(ob_f16_to_f32((uint16_t)h));
        if (f16_is_nan((uint16_t)h))
            got |= 0x00400000;
        uint32_t want = bits_of(hw_f16_to_f32((uint16_t)h));
        if (want != got)
            fail_msg("f16 0x%04x -> 0x%08x, F16C 0x%08x", h, got, want);
    }
#else
    skip();
#endif
}

static void test_round_trips(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        if (!f16_is_nan((uint16_t)h))
            assert_int_equal(ob_f32_to_f16(ob_f16_to_f32((uint16_t)h)), h);
        if (!isnan(ob_bf16_to_f32((uint16_t)h)))
            assert_int_equal(ob_f32_to_bf16(ob_bf16_to_f32((uint16_t)h)), h);
        else /* NaN stays NaN, sign kept */
            assert_true(isnan(ob_bf16_to_f32(ob_f32_to_bf16(ob_bf16_to_f32((uint16_t)h)))) &&
                        (ob_f32_to_bf16(ob_bf16_to_f32((uint16_t)h)) & 0x8000) == (h & 0x8000));
    }
}

static void test_tensor_to_f32(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, test_seed() + 4);
    enum { N = 1000 };
    unsigned char *buf = malloc(N * 4 + 8);
    float *out = malloc(N * sizeof *out);
    const ob_dtype kinds[] = {OB_DTYPE_F32, OB_DTYPE_F16, OB_DTYPE_BF16};
    for (size_t offset = 0; offset < 4; offset++) {
        for (size_t k = 0; k < 3; k++) {
            size_t esize = ob_dtype_size(kinds[k]);
            for (size_t i = 0; i < N * esize; i++)
                buf[offset + i] = (unsigned char)ob_rng_u32(&rng);
            ob_tensor_view v = {.name = "t", .dtype = kinds[k], .ndim = 2, .shape = {10, N / 10},
                                .data = buf + offset, .nbytes = N * esize};
            assert_int_equal(ob_tensor_aligned(&v), offset % esize == 0);
            assert_ok(ob_tensor_to_f32(&v, out));
            for (size_t i = 0; i < N; i++) {
                uint32_t want;
                uint16_t h;
                if (kinds[k] == OB_DTYPE_F32) {
                    memcpy(&want, buf + offset + 4 * i, 4);
                } else {
                    memcpy(&h, buf + offset + 2 * i, 2);
                    want = bits_of(kinds[k] == OB_DTYPE_F16 ? ob_f16_to_f32(h) : ob_bf16_to_f32(h));
                }
                assert_int_equal(bits_of(out[i]), want);
            }
            v.nbytes--;
            assert_fails_with(ob_tensor_to_f32(&v, out), OB_ERR_INVALID_ARG, "tensor 't'");
        }
    }
    ob_tensor_view v = {.name = "ints", .dtype = OB_DTYPE_I8, .ndim = 1, .shape = {4}, .data = buf, .nbytes = 4};
    assert_true(ob_tensor_aligned(&v));
    assert_fails_with(ob_tensor_to_f32(&v, out), OB_ERR_UNSUPPORTED, "I8");
    free(buf);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_shape_numel),
        cmocka_unit_test(test_dtype_bytes_for),
        cmocka_unit_test(test_widen_against_numpy),
        cmocka_unit_test(test_narrow_against_numpy),
        cmocka_unit_test(test_f16c_agrees),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_tensor_to_f32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
