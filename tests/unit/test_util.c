/* Implementation of the unit-test helpers (see test_util.h). */
#include "test_util.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *tu_data_dir(void) {
    const char *d = getenv("ONEBIT_DATA_DIR");
    return d && *d ? d : "../shared/data";
}

char *tu_data_path(const char *rel) { return ob_path_join(tu_data_dir(), rel); }

uint64_t tu_seed(const char *test) {
    const char *env = getenv("ONEBIT_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    print_message("%s: seed %llu (set ONEBIT_TEST_SEED to replay)\n", test, (unsigned long long)seed);
    return seed;
}

char *tu_make_temp_dir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/onebit-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    if (!d)
        fail_msg("mkdtemp failed");
    return ob_strdup(d);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_remove_tree(const char *dir) {
    if (dir)
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_write_file(const char *dir, const char *name, const void *data, size_t len) {
    char *path = ob_path_join(dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        fail_msg("cannot write %s", path);
    if (len)
        fwrite(data, 1, len, fp);
    fclose(fp);
    return path;
}

char *tu_write_text(const char *dir, const char *name, const char *text) {
    return tu_write_file(dir, name, text, strlen(text));
}

static char *captured;
static size_t captured_len;

static void capture_sink(ob_log_level level, const char *message, void *user) {
    (void)level;
    (void)user;
    size_t n = strlen(message);
    char *grown = realloc(captured, captured_len + n + 2);
    if (!grown)
        return;
    captured = grown;
    memcpy(captured + captured_len, message, n);
    captured_len += n;
    captured[captured_len++] = '\n';
    captured[captured_len] = '\0';
}

static ob_log_level saved_level;

void tu_capture_begin(void) {
    free(captured);
    captured = NULL;
    captured_len = 0;
    saved_level = ob_log_get_level();
    ob_log_set_level(OB_LOG_TRACE);
    ob_log_set_sink(capture_sink, NULL);
}

const char *tu_captured(void) { return captured ? captured : ""; }

void tu_capture_end(void) {
    ob_log_set_sink(NULL, NULL);
    ob_log_set_level(saved_level);
}

double tu_max_rel_err(const float *a, const float *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]))
            return INFINITY;
        double d = fabs((double)a[i] - (double)b[i]);
        double m = fabs((double)b[i]);
        double r = d / (m > floor ? m : floor);
        if (r > worst)
            worst = r;
    }
    return worst;
}

int tu_run(const char *command, char **output) {
    char *full = NULL;
    if (asprintf(&full, "%s 2>&1", command) < 0)
        return -1;
    FILE *p = popen(full, "r");
    free(full);
    if (!p)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    if (buf)
        buf[len] = '\0';
    int status = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *tu_onebit(void) {
    static char path[4096];
    const char *bin = getenv("ONEBIT_BIN");
    snprintf(path, sizeof path, "%s/onebit", bin && *bin ? bin : "build/bin");
    return path;
}

const char *tu_python(void) {
    const char *p = getenv("ONEBIT_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}
