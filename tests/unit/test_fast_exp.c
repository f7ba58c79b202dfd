/* ob_fast_expf (src/cpu/fast_exp.h) against the exponential in double: within
 * 2 ulp over its whole range, swept densely and at random points, and its
 * limits (0 below the range, saturation above, NaN through). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/fast_exp.h"
#include "test_util.h"

static int64_t ulp_distance(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    return llabs((int64_t)ia - ib);
}

static int64_t check(float x, int64_t worst, float *worst_x) {
    float want = (float)exp((double)x), got = ob_fast_expf(x);
    int64_t d = ulp_distance(got, want);
    if (d > worst)
        *worst_x = x;
    return d > worst ? d : worst;
}

static void test_accuracy(void **state) {
    (void)state;
    int64_t worst = 0;
    float worst_x = 0;
    /* Every 2^-12 across the range, then random points. */
    for (float x = OB_FAST_EXP_MIN; x <= OB_FAST_EXP_MAX; x += 1.0f / 4096)
        worst = check(x, worst, &worst_x);
    ob_rng rng;
    ob_rng_seed(&rng, tu_seed("test_fast_exp"));
    for (int i = 0; i < 2000000; i++) {
        float x = OB_FAST_EXP_MIN + (float)ob_rng_uniform(&rng) * (OB_FAST_EXP_MAX - OB_FAST_EXP_MIN);
        worst = check(x, worst, &worst_x);
    }
    print_message("largest error %lld ulp, at x = %.9g\n", (long long)worst, worst_x);
    assert_true(worst <= 2);
    assert_true(ob_fast_expf(0.0f) == 1.0f);
}

static void test_limits(void **state) {
    (void)state;
    assert_true(ob_fast_expf(-87.34f) == 0.0f);
    assert_true(ob_fast_expf(-1000.0f) == 0.0f);
    assert_true(ob_fast_expf(-INFINITY) == 0.0f);
    float top = ob_fast_expf(OB_FAST_EXP_MAX);
    assert_true(isfinite(top) && top > 2e38f);
    assert_true(ob_fast_expf(1000.0f) == top && ob_fast_expf(INFINITY) == top);
    assert_true(isnan(ob_fast_expf(NAN)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
