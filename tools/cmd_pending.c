/* Commands whose library parts have not landed yet: they say so and fail, so
 * that scripts never mistake them for working ones. Each moves to its own
 * cmd_<name>.c when it is implemented. */
#include <stdio.h>

#include "commands.h"

static int pending(const char *name, const char *issue) {
    fprintf(stderr, "%s: not implemented yet (%s)\n", name, issue);
    return 3;
}

int ob_cmd_search(int argc, char **argv) { (void)argc; return pending(argv[0], "bit-width search issue"); }
int ob_cmd_eval_config(int argc, char **argv) { (void)argc; return pending(argv[0], "bit-width search issue"); }
