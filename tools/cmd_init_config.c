/* onebit init-config PATH: writes the default config.json. */
#include <stdio.h>

#include "commands.h"
#include "onebit/config.h"

int ob_cmd_init_config(int argc, char **argv) {
    bool force = false;
    const ob_arg args[] = {
        {"--force", OB_ARG_BOOL, &force, NULL, "overwrite an existing file", NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Write the default model configuration to PATH (every field: docs/CONFIG.md).",
        .usage = "[--force] PATH",
        .args = args,
        .min_positional = 1,
        .max_positional = 1,
    };
    ob_strlist pos;
    int rc = ob_cmd_parse(&spec, argc, argv, &pos);
    if (rc >= 0)
        return rc;
    const char *path = pos.items[0];
    if (!force && ob_path_exists(path)) {
        fprintf(stderr, "%s: %s already exists (use --force to overwrite)\n", argv[0], path);
        ob_args_free(&spec, &pos);
        return 1;
    }
    ob_config cfg;
    ob_config_default(&cfg);
    ob_status st = ob_config_save(&cfg, path);
    if (st == OB_OK)
        printf("wrote %s\n", path);
    ob_args_free(&spec, &pos);
    return st ? ob_cmd_fail(argv[0]) : 0;
}
