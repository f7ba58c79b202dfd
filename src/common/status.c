/* Status names and the thread-local error message that every library function
 * fills before returning a failure. */
#include <stdio.h>
#include <string.h>

#include "onebit/common.h"

#define OB_ERROR_CAPACITY 2048

static _Thread_local char last_error[OB_ERROR_CAPACITY];

const char *ob_status_name(ob_status s) {
    switch (s) {
    case OB_OK: return "ok";
    case OB_ERR_INVALID_ARG: return "invalid argument";
    case OB_ERR_IO: return "I/O error";
    case OB_ERR_FORMAT: return "format error";
    case OB_ERR_CONFIG: return "invalid configuration";
    case OB_ERR_NOMEM: return "out of memory";
    case OB_ERR_UNSUPPORTED: return "unsupported";
    case OB_ERR_NUMERIC: return "numerical error";
    case OB_ERR_INTERRUPTED: return "interrupted";
    case OB_ERR_DEVICE: return "device error";
    case OB_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

ob_status ob_error(ob_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

ob_status ob_error_context(ob_status code, const char *fmt, ...) {
    char old[OB_ERROR_CAPACITY];
    memcpy(old, last_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (old[0] && n >= 0 && (size_t)n < sizeof last_error) {
        size_t used = (size_t)n;
        size_t room = sizeof last_error - used;
        size_t len = strnlen(old, sizeof old - 1);
        if (room > 2) {
            memcpy(last_error + used, ": ", 2);
            used += 2;
            room -= 2;
            if (len >= room)
                len = room - 1;
            memcpy(last_error + used, old, len);
            last_error[used + len] = '\0';
        }
    }
    return code;
}

const char *ob_last_error(void) { return last_error; }

void ob_clear_error(void) { last_error[0] = '\0'; }
