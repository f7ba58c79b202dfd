/* Command-line parsing from a declarative flag table (see args.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/args.h"

static const ob_arg *find_flag(const ob_arg *args, const char *name, size_t len) {
    for (const ob_arg *a = args; a->name; a++)
        if (strlen(a->name) == len && strncmp(a->name, name, len) == 0)
            return a;
    return NULL;
}

static ob_status unknown_flag(const ob_command_spec *spec, const char *flag, size_t len) {
    char given[128];
    snprintf(given, sizeof given, "%.*s", (int)(len < 120 ? len : 120), flag);
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (const ob_arg *a = spec->args; a->name; a++) {
        size_t d = ob_edit_distance(given, a->name);
        if (d < best_d) {
            best_d = d;
            best = a->name;
        }
    }
    if (best && ob_close_enough(given, best_d))
        return ob_error(OB_ERR_INVALID_ARG, "%s: unknown flag '%s'; did you mean '%s'? (see %s --help)",
                        spec->name, given, best, spec->name);
    return ob_error(OB_ERR_INVALID_ARG, "%s: unknown flag '%s' (see %s --help)", spec->name, given, spec->name);
}

static ob_status bad_value(const ob_command_spec *spec, const ob_arg *a, const char *value, const char *what) {
    return ob_error(OB_ERR_INVALID_ARG, "%s: %s expects %s, got '%s'", spec->name, a->name, what, value);
}

static ob_status check_range(const ob_command_spec *spec, const ob_arg *a, double v, const char *value) {
    if (a->min < a->max && (v < a->min || v > a->max)) {
        return ob_error(OB_ERR_INVALID_ARG, "%s: %s = %s is outside the allowed range [%g, %g]", spec->name,
                        a->name, value, a->min, a->max);
    }
    return OB_OK;
}

static ob_status set_value(const ob_command_spec *spec, const ob_arg *a, const char *value) {
    char *end = NULL;
    errno = 0;
    switch (a->type) {
    case OB_ARG_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(bool *)a->dest = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(bool *)a->dest = false;
        else
            return bad_value(spec, a, value, "true or false");
        return OB_OK;
    case OB_ARG_INT:
    case OB_ARG_I64: {
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno == ERANGE)
            return bad_value(spec, a, value, "an integer");
        if (a->type == OB_ARG_INT && (v < -2147483647LL || v > 2147483647LL))
            return bad_value(spec, a, value, "an integer that fits in 32 bits");
        ob_status st = check_range(spec, a, (double)v, value);
        if (st)
            return st;
        if (a->type == OB_ARG_INT)
            *(int *)a->dest = (int)v;
        else
            *(int64_t *)a->dest = (int64_t)v;
        return OB_OK;
    }
    case OB_ARG_DOUBLE: {
        double v = strtod(value, &end);
        if (end == value || *end || errno == ERANGE || !isfinite(v))
            return bad_value(spec, a, value, "a finite number");
        ob_status st = check_range(spec, a, v, value);
        if (st)
            return st;
        *(double *)a->dest = v;
        return OB_OK;
    }
    case OB_ARG_STRING:
        *(const char **)a->dest = value;
        return OB_OK;
    case OB_ARG_CHOICE: {
        size_t len = strlen(value);
        for (const char *c = a->choices; c && *c;) {
            const char *bar = strchr(c, '|');
            size_t clen = bar ? (size_t)(bar - c) : strlen(c);
            if (clen == len && strncmp(c, value, len) == 0) {
                *(const char **)a->dest = value;
                return OB_OK;
            }
            c = bar ? bar + 1 : c + clen;
        }
        return ob_error(OB_ERR_INVALID_ARG, "%s: %s expects one of %s, got '%s'", spec->name, a->name, a->choices,
                        value);
    }
    case OB_ARG_LIST:
        break;
    }
    return ob_error(OB_ERR_INVALID_ARG, "%s: internal: bad flag type for %s", spec->name, a->name);
}

static ob_status list_append(ob_strlist *list, const char *value, int capacity) {
    if (!list->items) {
        list->items = ob_calloc((size_t)capacity, sizeof *list->items);
        if (!list->items)
            return OB_ERR_NOMEM;
    }
    list->items[list->count++] = value;
    return OB_OK;
}

/* "-1", "-.5" and "-1e-3" are values (--lr-min -1), not flags; "-" alone is a
 * positional argument (stdin by convention). */
static bool is_flag(const char *s) {
    if (s[0] != '-' || s[1] == '\0')
        return false;
    char *end;
    (void)strtod(s, &end);
    return *end != '\0';
}

ob_status ob_args_parse(const ob_command_spec *spec, int argc, char **argv, ob_strlist *positional, bool *help) {
    *help = false;
    if (positional)
        memset(positional, 0, sizeof *positional);
    for (const ob_arg *a = spec->args; a->name; a++)
        if (a->type == OB_ARG_LIST)
            memset(a->dest, 0, sizeof(ob_strlist));
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ob_args_print_help(spec, stdout);
            *help = true;
            return OB_OK;
        }
    }
    bool flags_done = false;
    ob_status st = OB_OK;
    for (int i = 1; i < argc && st == OB_OK; i++) {
        const char *arg = argv[i];
        if (!flags_done && strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (flags_done || !is_flag(arg)) {
            if (!positional || positional->count >= spec->max_positional) {
                st = ob_error(OB_ERR_INVALID_ARG, "%s: unexpected argument '%s' (see %s --help)", spec->name, arg,
                              spec->name);
                break;
            }
            st = list_append(positional, arg, spec->max_positional);
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const ob_arg *a = find_flag(spec->args, arg, name_len);
        if (!a) {
            st = unknown_flag(spec, arg, name_len);
            break;
        }
        if (a->seen)
            *a->seen = true;
        if (a->type == OB_ARG_BOOL && !eq) {
            *(bool *)a->dest = true;
            continue;
        }
        if (a->type == OB_ARG_LIST) {
            ob_strlist *list = a->dest;
            if (eq) {
                st = list_append(list, eq + 1, argc);
                continue;
            }
            int before = list->count;
            while (i + 1 < argc && !is_flag(argv[i + 1]) && st == OB_OK)
                st = list_append(list, argv[++i], argc);
            if (st == OB_OK && list->count == before)
                st = ob_error(OB_ERR_INVALID_ARG, "%s: %s needs at least one %s", spec->name, a->name,
                              a->metavar ? a->metavar : "value");
            continue;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc && !is_flag(argv[i + 1])) {
            value = argv[++i];
        } else if (i + 1 < argc) {
            st = ob_error(OB_ERR_INVALID_ARG,
                          "%s: %s needs a value (%s), found the flag '%s' (write %s=%s for a value that starts "
                          "with '-')",
                          spec->name, a->name, a->metavar ? a->metavar : "VALUE", argv[i + 1], a->name, argv[i + 1]);
            break;
        } else {
            st = ob_error(OB_ERR_INVALID_ARG, "%s: %s needs a value (%s)", spec->name, a->name,
                          a->metavar ? a->metavar : "VALUE");
            break;
        }
        st = set_value(spec, a, value);
    }
    if (st == OB_OK && positional && positional->count < spec->min_positional)
        st = ob_error(OB_ERR_INVALID_ARG, "%s: missing argument; usage: %s %s", spec->name, spec->name,
                      spec->usage ? spec->usage : "");
    if (st != OB_OK)
        ob_args_free(spec, positional);
    return st;
}

void ob_args_free(const ob_command_spec *spec, ob_strlist *positional) {
    for (const ob_arg *a = spec->args; a->name; a++) {
        if (a->type == OB_ARG_LIST) {
            ob_strlist *list = a->dest;
            free(list->items);
            memset(list, 0, sizeof *list);
        }
    }
    if (positional) {
        free(positional->items);
        memset(positional, 0, sizeof *positional);
    }
}

static void format_default(const ob_arg *a, char *buf, size_t size) {
    buf[0] = '\0';
    switch (a->type) {
    case OB_ARG_BOOL:
        break;
    case OB_ARG_INT:
        snprintf(buf, size, " [%d]", *(int *)a->dest);
        break;
    case OB_ARG_I64:
        snprintf(buf, size, " [%lld]", (long long)*(int64_t *)a->dest);
        break;
    case OB_ARG_DOUBLE:
        snprintf(buf, size, " [%g]", *(double *)a->dest);
        break;
    case OB_ARG_STRING:
    case OB_ARG_CHOICE:
        if (*(const char **)a->dest)
            snprintf(buf, size, " [%s]", *(const char **)a->dest);
        break;
    case OB_ARG_LIST:
        break;
    }
}

void ob_args_print_help(const ob_command_spec *spec, FILE *out) {
    fprintf(out, "usage: %s %s\n\n%s\n", spec->name, spec->usage ? spec->usage : "[options]", spec->summary);
    if (spec->args[0].name)
        fprintf(out, "\noptions:\n");
    for (const ob_arg *a = spec->args; a->name; a++) {
        char left[96], def[160];
        const char *meta = a->type == OB_ARG_BOOL ? "" : (a->metavar ? a->metavar : "VALUE");
        if (a->type == OB_ARG_CHOICE && !a->metavar)
            meta = a->choices;
        snprintf(left, sizeof left, "%s%s%s%s", a->name, *meta ? " " : "", meta, a->type == OB_ARG_LIST ? "..." : "");
        format_default(a, def, sizeof def);
        if (strlen(left) > 28)
            fprintf(out, "  %s\n  %-28s %s%s\n", left, "", a->help ? a->help : "", def);
        else
            fprintf(out, "  %-28s %s%s\n", left, a->help ? a->help : "", def);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
    if (spec->details)
        fprintf(out, "\n%s\n", spec->details);
}
