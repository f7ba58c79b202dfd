/* The sampler against tests/ref/sampler_ref.py (numpy, float64): each stage
 * alone (repetition penalty, temperature, top-k with ties, top-p, min-p,
 * greedy) and all together, on fresh random logits, for the distribution the
 * draw comes from; then the empirical frequencies of many seeded draws against
 * the reference probabilities; then determinism, the RNG use of greedy
 * decoding, and parameter errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "onebit/sampler.h"
#include "test_util.h"

typedef struct {
    const char *what;
    double temperature, top_p, min_p, penalty;
    int top_k, window, vocab;
    bool ties; /* logits on a coarse grid, so top-k meets ties */
} sampler_case;

static const sampler_case cases[] = {
    {"repetition penalty only", 1.0, 1.0, 0.0, 1.3, 0, 0, 40, false},
    {"repetition penalty, window 5", 1.0, 1.0, 0.0, 2.0, 0, 5, 40, false},
    {"temperature 0.5 only", 0.5, 1.0, 0.0, 1.0, 0, 0, 40, false},
    {"temperature 1.7 only", 1.7, 1.0, 0.0, 1.0, 0, 0, 40, false},
    {"top-k 7", 1.0, 1.0, 0.0, 1.0, 7, 0, 40, false},
    {"top-k 5 with ties", 1.0, 1.0, 0.0, 1.0, 5, 0, 40, true},
    {"top-p 0.6", 1.0, 0.6, 0.0, 1.0, 0, 0, 40, false},
    {"top-p 0.95 over 3000 ids", 0.7, 0.95, 0.0, 1.0, 0, 0, 3000, false},
    {"min-p 0.2", 1.0, 1.0, 0.2, 1.0, 0, 0, 40, false},
    {"greedy", 0.0, 1.0, 0.0, 1.0, 0, 0, 40, false},
    {"greedy with penalty", 0.0, 1.0, 0.0, 1.5, 0, 0, 40, false},
    {"all stages", 0.8, 0.9, 0.05, 1.1, 20, 16, 60, false},
    {"all stages, ties", 1.2, 0.8, 0.1, 1.2, 12, 0, 60, true},
};
#define NUM_CASES (sizeof cases / sizeof cases[0])
#define HISTORY 24
#define DRAWS 200000

typedef struct {
    float *logits;
    int32_t history[HISTORY];
    ob_sampler_params params;
} prepared;

static void prepare(const sampler_case *c, ob_rng *rng, prepared *p) {
    p->logits = malloc((size_t)c->vocab * sizeof(float));
    for (int i = 0; i < c->vocab; i++) {
        double v = 2.0 * ob_rng_normal(rng);
        p->logits[i] = c->ties ? (float)(round(v * 2) / 2) : (float)v;
    }
    for (int i = 0; i < HISTORY; i++)
        p->history[i] = (int32_t)ob_rng_below(rng, (uint64_t)c->vocab);
    p->params = (ob_sampler_params){c->temperature, c->top_k, c->top_p, c->min_p, c->penalty, c->window, 1234};
}

static char *cases_json(const prepared *p) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t k = 0; k < NUM_CASES; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON *lg = cJSON_AddArrayToObject(o, "logits");
        for (int i = 0; i < cases[k].vocab; i++)
            cJSON_AddItemToArray(lg, cJSON_CreateNumber(p[k].logits[i]));
        cJSON *h = cJSON_AddArrayToObject(o, "history");
        for (int i = 0; i < HISTORY; i++)
            cJSON_AddItemToArray(h, cJSON_CreateNumber(p[k].history[i]));
        cJSON_AddNumberToObject(o, "temperature", cases[k].temperature);
        cJSON_AddNumberToObject(o, "top_k", cases[k].top_k);
        cJSON_AddNumberToObject(o, "top_p", cases[k].top_p);
        cJSON_AddNumberToObject(o, "min_p", cases[k].min_p);
        cJSON_AddNumberToObject(o, "penalty", cases[k].penalty);
        cJSON_AddNumberToObject(o, "window", cases[k].window);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return text;
}

static void read_probs(const cJSON *arr, double *out, int n) {
    assert_int_equal(cJSON_GetArraySize(arr), n);
    for (int i = 0; i < n; i++)
        out[i] = cJSON_GetArrayItem(arr, i)->valuedouble;
}

typedef struct {
    double p;
    int id;
} ranked;

static int by_p(const void *a, const void *b) {
    double x = ((const ranked *)a)->p, y = ((const ranked *)b)->p;
    return (x > y) - (x < y);
}

/* Ids in increasing order of probability. */
static ranked *by_probability(const double *prob, int V) {
    ranked *order = malloc((size_t)V * sizeof *order);
    for (int i = 0; i < V; i++)
        order[i] = (ranked){prob[i], i};
    qsort(order, (size_t)V, sizeof *order, by_p);
    return order;
}

static void test_against_reference(void **state) {
    (void)state;
    ob_rng rng;
    ob_rng_seed(&rng, tu_seed("test_sampler"));
    prepared p[NUM_CASES];
    for (size_t k = 0; k < NUM_CASES; k++)
        prepare(&cases[k], &rng, &p[k]);
    char *dir = tu_make_temp_dir();
    char *text = cases_json(p);
    char *in = tu_write_text(dir, "cases.json", text);
    free(text);
    char *out = ob_path_join(dir, "ref.json");
    char cmd[4096], *log = NULL;
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/sampler_ref.py %s %s", tu_python(), getenv("ONEBIT_SOURCE_DIR"), in, out);
    if (tu_run(cmd, &log) != 0)
        fail_msg("reference failed: %s", log ? log : "");
    free(log);
    cJSON *ref;
    assert_ok(ob_json_load_file(out, &ref));
    for (size_t k = 0; k < NUM_CASES; k++) {
        const sampler_case *c = &cases[k];
        int V = c->vocab;
        double *want = malloc((size_t)V * sizeof(double)), *got = malloc((size_t)V * sizeof(double));
        read_probs(cJSON_GetObjectItem(cJSON_GetArrayItem(ref, (int)k), "final"), want, V);
        ob_sampler *s;
        assert_ok(ob_sampler_create(&p[k].params, V, &s));
        assert_ok(ob_sampler_distribution(s, p[k].logits, V, p[k].history, HISTORY, got));
        int kept = 0;
        double sum = 0;
        for (int i = 0; i < V; i++) {
            if (fabs(got[i] - want[i]) > 1e-9)
                fail_msg("%s: p[%d] = %.12g, reference %.12g", c->what, i, got[i], want[i]);
            kept += got[i] > 0;
            sum += got[i];
        }
        assert_true(fabs(sum - 1) < 1e-12);
        if (c->top_k && c->top_p >= 1 && c->min_p == 0 && c->temperature > 0)
            assert_int_equal(kept, c->top_k); /* exactly k, ties included */
        /* Frequencies of seeded draws against the reference probabilities. */
        if (c->temperature > 0 && V <= 100) {
            int *count = calloc((size_t)V, sizeof(int));
            for (int d = 0; d < DRAWS; d++) {
                int32_t tok;
                assert_ok(ob_sampler_sample(s, p[k].logits, V, p[k].history, HISTORY, &tok));
                assert_true(tok >= 0 && tok < V);
                count[tok]++;
            }
            /* Pearson's chi-square follows its law only where expected counts
             * are not small (one draw of an id with p = 1e-6 would add 5).
             * The rarest ids share one cell until it expects 5 draws. */
            double chi2 = 0, pool_expected = 0, pool_count = 0;
            int dof = -1;
            for (int i = 0; i < V; i++)
                if (want[i] == 0 && count[i])
                    fail_msg("%s: id %d drawn %d times, its probability is 0", c->what, i, count[i]);
            ranked *order = by_probability(want, V);
            for (int r = 0; r < V; r++) {
                int i = order[r].id;
                double expected = DRAWS * want[i];
                if (expected == 0)
                    continue;
                if (pool_expected < 5) {
                    pool_expected += expected;
                    pool_count += count[i];
                    continue;
                }
                double sd = sqrt(expected * (1 - want[i]));
                if (fabs(count[i] - expected) > 5 * sd)
                    fail_msg("%s: id %d drawn %d times, expected %.1f (%.1f sd)", c->what, i, count[i], expected,
                             fabs(count[i] - expected) / sd);
                chi2 += (count[i] - expected) * (count[i] - expected) / expected;
                dof++;
            }
            chi2 += (pool_count - pool_expected) * (pool_count - pool_expected) / pool_expected;
            dof++;
            free(order);
            if (dof > 0 && chi2 > dof + 6 * sqrt(2.0 * dof))
                fail_msg("%s: chi-square %.1f with %d degrees of freedom", c->what, chi2, dof);
            free(count);
        }
        ob_sampler_free(s);
        free(want);
        free(got);
    }
    cJSON_Delete(ref);
    for (size_t k = 0; k < NUM_CASES; k++)
        free(p[k].logits);
    tu_remove_tree(dir);
    free(dir);
    free(in);
    free(out);
}

/* Same seed, same tokens; greedy takes nothing from the stream. */
static void test_determinism_and_greedy(void **state) {
    (void)state;
    enum { V = 500 };
    float logits[V];
    ob_rng rng;
    ob_rng_seed(&rng, tu_seed("test_sampler"));
    for (int i = 0; i < V; i++)
        logits[i] = (float)ob_rng_normal(&rng);
    ob_sampler_params pp;
    ob_sampler_params_default(&pp);
    ob_sampler *a, *b;
    assert_ok(ob_sampler_create(&pp, V, &a));
    assert_ok(ob_sampler_create(&pp, V, &b));
    int32_t ta[64], tb[64];
    for (int i = 0; i < 64; i++) {
        assert_ok(ob_sampler_sample(a, logits, V, ta, (size_t)i, &ta[i]));
        assert_ok(ob_sampler_sample(b, logits, V, tb, (size_t)i, &tb[i]));
    }
    assert_memory_equal(ta, tb, sizeof ta);
    ob_sampler_seed(b, 99);
    int differ = 0;
    for (int i = 0; i < 64; i++) {
        assert_ok(ob_sampler_sample(b, logits, V, tb, (size_t)i, &tb[i]));
        differ += tb[i] != ta[i];
    }
    assert_true(differ > 0);
    ob_sampler_free(a);
    ob_sampler_free(b);
    /* Greedy: the argmax, and the random stream is left where it was. */
    pp.temperature = 0;
    pp.repetition_penalty = 1;
    assert_ok(ob_sampler_create(&pp, V, &a));
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    int32_t tok;
    for (int i = 0; i < 5; i++) {
        assert_ok(ob_sampler_sample(a, logits, V, NULL, 0, &tok));
        assert_int_equal(tok, best);
    }
    ob_sampler_free(a);
    /* A restricted vocabulary (the tokenizer's size) is respected. */
    pp.temperature = 1.0;
    pp.top_k = 0;
    pp.top_p = 1;
    assert_ok(ob_sampler_create(&pp, V, &a));
    for (int i = 0; i < 2000; i++) {
        assert_ok(ob_sampler_sample(a, logits, 10, NULL, 0, &tok));
        assert_true(tok >= 0 && tok < 10);
    }
    ob_sampler_free(a);
}

static void test_parameter_errors(void **state) {
    (void)state;
    ob_sampler_params p;
    ob_sampler *s;
    ob_sampler_params_default(&p);
    p.top_p = 0;
    assert_fails_with(ob_sampler_create(&p, 10, &s), OB_ERR_INVALID_ARG, "top_p");
    ob_sampler_params_default(&p);
    p.top_k = -1;
    assert_fails_with(ob_sampler_create(&p, 10, &s), OB_ERR_INVALID_ARG, "top_k");
    ob_sampler_params_default(&p);
    p.min_p = 1.5;
    assert_fails_with(ob_sampler_create(&p, 10, &s), OB_ERR_INVALID_ARG, "min_p");
    ob_sampler_params_default(&p);
    p.repetition_penalty = 0;
    assert_fails_with(ob_sampler_create(&p, 10, &s), OB_ERR_INVALID_ARG, "repetition_penalty");
    ob_sampler_params_default(&p);
    p.temperature = NAN;
    assert_fails_with(ob_sampler_create(&p, 10, &s), OB_ERR_INVALID_ARG, "temperature");
    ob_sampler_params_default(&p);
    assert_ok(ob_sampler_create(&p, 10, &s));
    float logits[11] = {0};
    int32_t tok;
    assert_fails_with(ob_sampler_sample(s, logits, 11, NULL, 0, &tok), OB_ERR_INVALID_ARG, "11 logits");
    logits[3] = NAN;
    assert_fails_with(ob_sampler_sample(s, logits, 10, NULL, 0, &tok), OB_ERR_NUMERIC, "logit 3");
    ob_sampler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_determinism_and_greedy),
        cmocka_unit_test(test_parameter_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
