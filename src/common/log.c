/* Levelled logging to stderr or a caller-supplied sink; the level starts from
 * $ONEBIT_LOG so that users can turn on detail without recompiling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/common.h"

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

static int current_level = -1; /* -1: not yet read from the environment */
static ob_log_sink current_sink;
static void *current_user;

bool ob_log_level_parse(const char *name, ob_log_level *out) {
    for (int i = 0; i <= OB_LOG_TRACE; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ob_log_level)i;
            return true;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = OB_LOG_WARN;
        return true;
    }
    return false;
}

ob_log_level ob_log_get_level(void) {
    if (current_level < 0) {
        ob_log_level level = OB_LOG_WARN;
        const char *env = getenv("ONEBIT_LOG");
        if (env && *env && !ob_log_level_parse(env, &level))
            fprintf(stderr, "onebit: warning: ONEBIT_LOG='%s' is not one of error|warn|info|debug|trace\n", env);
        current_level = (int)level;
    }
    return (ob_log_level)current_level;
}

void ob_log_set_level(ob_log_level level) { current_level = (int)level; }

bool ob_log_enabled(ob_log_level level) { return level <= ob_log_get_level(); }

void ob_log_set_sink(ob_log_sink sink, void *user) {
    current_sink = sink;
    current_user = user;
}

void ob_log(ob_log_level level, const char *fmt, ...) {
    if (!ob_log_enabled(level))
        return;
    char message[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (current_sink) {
        current_sink(level, message, current_user);
        return;
    }
    if (level == OB_LOG_INFO)
        fprintf(stderr, "%s\n", message);
    else
        fprintf(stderr, "onebit: %s: %s\n", level_names[level], message);
}
