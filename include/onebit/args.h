/* Declarative command-line parsing shared by every onebit command: each command
 * lists its flags once and gets parsing, range checks, --help text and "did you
 * mean" suggestions for unknown flags from the same table. */
#ifndef ONEBIT_ARGS_H
#define ONEBIT_ARGS_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_arg_type {
    OB_ARG_BOOL,   /* dest: bool*; "--flag" or "--flag=true|false" */
    OB_ARG_INT,    /* dest: int* */
    OB_ARG_I64,    /* dest: int64_t* */
    OB_ARG_DOUBLE, /* dest: double* */
    OB_ARG_STRING, /* dest: const char** (points into argv) */
    OB_ARG_CHOICE, /* dest: const char**; value must be one of `choices` ("a|b|c") */
    OB_ARG_LIST,   /* dest: ob_strlist*; takes every following value up to the next flag */
} ob_arg_type;

typedef struct ob_strlist {
    const char **items; /* points into argv; allocated by ob_args_parse */
    int count;
} ob_strlist;

typedef struct ob_arg {
    const char *name;    /* "--lr" */
    ob_arg_type type;
    void *dest;
    const char *metavar; /* "RATE" (shown in --help) */
    const char *help;    /* one line; defaults are printed from *dest */
    const char *choices; /* OB_ARG_CHOICE only */
    double min, max;     /* numeric range, checked when min < max */
    bool *seen;          /* optional: set true when the flag is given */
} ob_arg;

typedef struct ob_command_spec {
    const char *name;    /* "onebit train" */
    const char *summary; /* one sentence */
    const char *usage;   /* after the name: "[options] PATH" */
    const char *details; /* optional paragraph printed after the flags */
    const ob_arg *args;  /* terminated by an entry with name == NULL */
    int min_positional, max_positional;
} ob_command_spec;

/* Parses argv[1..argc). Positional arguments land in `positional` (may be NULL when
 * max_positional is 0). When --help/-h is present, the help text is printed to
 * stdout and *help is set; the caller then exits 0. Errors name the flag and the
 * offending value; unknown flags get the closest valid one suggested. Free the
 * lists with ob_args_free. */
ob_status ob_args_parse(const ob_command_spec *spec, int argc, char **argv, ob_strlist *positional,
                        bool *help) OB_NODISCARD;
void ob_args_free(const ob_command_spec *spec, ob_strlist *positional);
void ob_args_print_help(const ob_command_spec *spec, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
