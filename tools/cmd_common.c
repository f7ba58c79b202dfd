/* Flag parsing and error reporting shared by the subcommands. */
#include <stdio.h>

#include "commands.h"

int ob_cmd_parse(const ob_command_spec *spec, int argc, char **argv, ob_strlist *positional) {
    bool help = false;
    if (ob_args_parse(spec, argc, argv, positional, &help) != OB_OK) {
        fprintf(stderr, "%s\n", ob_last_error());
        return 2;
    }
    return help ? 0 : -1;
}

int ob_cmd_fail(const char *context) {
    if (context && *context)
        fprintf(stderr, "%s: %s\n", context, ob_last_error());
    else
        fprintf(stderr, "%s\n", ob_last_error());
    return 1;
}
