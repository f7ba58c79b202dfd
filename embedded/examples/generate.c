/* The embedded runtime's example program, the same on a desktop and on a
 * microcontroller: it runs a model exported with `onebit export
 * --emit-c-header` on a prompt given as token ids, and prints
 *
 *   ids: <the generated token ids>
 *   hex: <prompt and continuation decoded to bytes, in hex>
 *   text: <the same bytes>
 *   stop: <reason>
 *   arena: <bytes>, stack: <bytes>
 *   counter check / instructions: ... (boards that count instructions)
 *
 * The model comes from ONEBIT_MODEL_HEADER (default "onebit_model.h"), the
 * prompt and the sampler settings from ONEBIT_RUN_HEADER (default
 * "onebit_run.h"), which defines run_prompt[] and may define RUN_CONTEXT,
 * RUN_MAX_TOKENS, RUN_TEMPERATURE, RUN_TOP_K, RUN_TOP_P, RUN_MIN_P,
 * RUN_REPETITION_PENALTY, RUN_REPETITION_WINDOW and RUN_SEED (the defaults
 * are onebit generate's). Freestanding: nothing but the runtime and board.h. */
#include "board.h"
#include "onebit_embedded.h"

#ifndef ONEBIT_MODEL_HEADER
#define ONEBIT_MODEL_HEADER "onebit_model.h"
#endif
#ifndef ONEBIT_RUN_HEADER
#define ONEBIT_RUN_HEADER "onebit_run.h"
#endif
#include ONEBIT_MODEL_HEADER
#include ONEBIT_RUN_HEADER

#ifndef RUN_CONTEXT
#define RUN_CONTEXT ONEBIT_MODEL_MAX_CONTEXT
#endif
#ifndef RUN_MAX_TOKENS
#define RUN_MAX_TOKENS 64
#endif
#ifndef RUN_TEMPERATURE
#define RUN_TEMPERATURE 0.8
#endif
#ifndef RUN_TOP_K
#define RUN_TOP_K 40
#endif
#ifndef RUN_TOP_P
#define RUN_TOP_P 0.9
#endif
#ifndef RUN_MIN_P
#define RUN_MIN_P 0.0
#endif
#ifndef RUN_REPETITION_PENALTY
#define RUN_REPETITION_PENALTY 1.1
#endif
#ifndef RUN_REPETITION_WINDOW
#define RUN_REPETITION_WINDOW 64
#endif
#ifndef RUN_SEED
#define RUN_SEED 42
#endif

static _Alignas(16) uint8_t arena[ONEBIT_MODEL_ARENA_BYTES(RUN_CONTEXT)];

static void put(const char *s) {
    size_t n = 0;
    while (s[n])
        n++;
    board_write(s, n);
}

static void put_u64(uint64_t v) {
    char buf[24];
    int i = sizeof buf;
    buf[--i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(buf + i);
}

static void fail(const char *what, int status) {
    put("error: ");
    put(what);
    put(": ");
    put(obe_status_name(status));
    put("\n");
    board_exit(1);
}

#define MAX_OUT (RUN_MAX_TOKENS > 0 ? RUN_MAX_TOKENS : 1)

typedef struct {
    int32_t ids[MAX_OUT];
    int32_t n;
    uint64_t first, last; /* instruction counts at the first and the last token */
} record;

static int on_token(int32_t token, void *user) {
    record *r = user;
    uint64_t now = board_instructions();
    if (r->n == 0)
        r->first = now;
    r->last = now;
    if (r->n < MAX_OUT)
        r->ids[r->n++] = token;
    return 1;
}

static void put_bytes(const obe_model *m, const int32_t *ids, int32_t n, int hex) {
    static const char digits[] = "0123456789abcdef";
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *b = obe_token_bytes(m, ids[i], &len);
        for (size_t k = 0; k < len; k++) {
            if (hex) {
                char h[2] = {digits[b[k] >> 4], digits[b[k] & 15]};
                board_write(h, 2);
            } else {
                board_write((const char *)&b[k], 1);
            }
        }
    }
}

int main(void) {
    board_init();
    const obe_model *m = &onebit_model;
    obe_session *s;
    int st = obe_session_init(&s, m, RUN_CONTEXT, arena, sizeof arena);
    if (st)
        fail("session", st);
    obe_sampler_params p = {RUN_TEMPERATURE, RUN_TOP_K, RUN_TOP_P, RUN_MIN_P, RUN_REPETITION_PENALTY,
                            RUN_REPETITION_WINDOW, RUN_SEED};
    if ((st = obe_sampler_set(s, &p)))
        fail("sampler", st);
    int32_t n_prompt = (int32_t)(sizeof run_prompt / sizeof run_prompt[0]);
    obe_generate_options o = {RUN_MAX_TOKENS, m->eos_id, m->vocab_count};
    record r = {{0}, 0, 0, 0};
    int32_t generated = 0, stop = 0;
    uint64_t start = board_instructions();
    st = obe_generate(s, run_prompt, n_prompt, &o, on_token, &r, &generated, &stop);
    if (st)
        fail("generate", st);
    put("ids:");
    for (int32_t i = 0; i < r.n; i++) {
        put(" ");
        put_u64((uint64_t)r.ids[i]);
    }
    /* The prompt's text without the end-of-text token that opens it, as onebit generate prints it. */
    int32_t skip = n_prompt > 0 && run_prompt[0] == m->eos_id ? 1 : 0;
    for (int hex = 1; hex >= 0; hex--) {
        put(hex ? "\nhex: " : "\ntext: ");
        put_bytes(m, run_prompt + skip, n_prompt - skip, hex);
        put_bytes(m, r.ids, r.n, hex);
    }
    static const char *const reasons[] = {"max-tokens", "eos", "context", "callback"};
    put("\nstop: ");
    put(reasons[stop & 3]);
    put(", ");
    put_u64((uint64_t)generated);
    put(" tokens\narena: ");
    put_u64(obe_arena_bytes(m, RUN_CONTEXT));
    put(" bytes of ");
    put_u64(sizeof arena);
    put(" reserved, stack: ");
    put_u64(board_stack_used());
    put(" bytes\n");
    uint64_t expected, counted = board_count_check(&expected);
    if (counted) {
        put("counter check: a loop of ");
        put_u64(expected);
        put(" instructions counted as ");
        put_u64(counted);
        put("\n");
    }
    if (r.n > 1 && r.last > r.first) {
        put("instructions: prefill+first token ");
        put_u64(r.first - start);
        put(" (");
        put_u64((uint64_t)n_prompt);
        put(" prompt tokens), decode ");
        put_u64((r.last - r.first) / (uint64_t)(r.n - 1));
        put(" per token\n");
    }
    board_exit(0);
    return 0;
}
