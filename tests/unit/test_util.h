/* Helpers shared by the cmocka unit tests: paths to shared data, scratch
 * directories, captured log output, relative errors, running commands. */
#ifndef ONEBIT_TEST_UTIL_H
#define ONEBIT_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif
#include <cmocka.h>

/* ../shared/data (from $ONEBIT_DATA_DIR). */
const char *tu_data_dir(void);
/* Heap path "<data dir>/<rel>". */
char *tu_data_path(const char *rel);
/* The seed of a randomised test: $ONEBIT_TEST_SEED when set (to replay a
 * failure), else from the clock and pid; printed with the test's name. */
uint64_t tu_seed(const char *test);
/* Fresh scratch directory, removed by tu_remove_tree. */
char *tu_make_temp_dir(void);
void tu_remove_tree(const char *dir);
/* Writes bytes to dir/name; returns the heap path. */
char *tu_write_file(const char *dir, const char *name, const void *data, size_t len);
/* Writes a NUL-terminated string to dir/name. */
char *tu_write_text(const char *dir, const char *name, const char *text);

/* Captures ob_log output (all levels) until tu_capture_end. */
void tu_capture_begin(void);
const char *tu_captured(void);
void tu_capture_end(void);

/* max_i |a-b| / max(|b|, floor): relative error with a floor for values near 0. */
double tu_max_rel_err(const float *a, const float *b, size_t n, double floor);

/* Runs a shell command, capturing stdout+stderr into *output (heap, may be NULL);
 * returns the exit status (or -1). */
int tu_run(const char *command, char **output);
/* build/bin/onebit. */
const char *tu_onebit(void);
/* Python with torch (Debian's /usr/bin/python3 unless $ONEBIT_PYTHON). */
const char *tu_python(void);

/* Fails the test with ob_last_error() when `expr` is not OB_OK. */
#define assert_ok(expr)                                                                              \
    do {                                                                                             \
        ob_status tu_st_ = (expr);                                                                   \
        if (tu_st_ != OB_OK)                                                                         \
            fail_msg("%s -> %s: %s", #expr, ob_status_name(tu_st_), ob_last_error());                \
    } while (0)

/* Asserts that `expr` fails with `code` and a message containing `needle`. */
#define assert_fails_with(expr, code, needle)                                                        \
    do {                                                                                             \
        ob_status tu_st_ = (expr);                                                                   \
        if (tu_st_ != (code))                                                                        \
            fail_msg("%s -> %s (wanted %s): %s", #expr, ob_status_name(tu_st_), ob_status_name(code), \
                     ob_last_error());                                                               \
        if (!strstr(ob_last_error(), (needle)))                                                      \
            fail_msg("%s: message '%s' lacks '%s'", #expr, ob_last_error(), (needle));               \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
