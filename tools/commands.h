/* Entry points of the onebit subcommands. Each takes argv with argv[0] set to
 * the command's name ("onebit train") and returns the process exit status. */
#ifndef ONEBIT_TOOLS_COMMANDS_H
#define ONEBIT_TOOLS_COMMANDS_H

#include "onebit/args.h"

int ob_cmd_train(int argc, char **argv);
int ob_cmd_tokenize(int argc, char **argv);
int ob_cmd_tokenizer(int argc, char **argv);
int ob_cmd_chat(int argc, char **argv);
int ob_cmd_generate(int argc, char **argv);
int ob_cmd_eval(int argc, char **argv);
int ob_cmd_export(int argc, char **argv);
int ob_cmd_search(int argc, char **argv);
int ob_cmd_eval_config(int argc, char **argv);
int ob_cmd_init_config(int argc, char **argv);
int ob_cmd_plot(int argc, char **argv);

/* Parses flags for `spec`; returns -1 to continue, or the exit status to return
 * now (0 after --help, 2 after a usage error, which it prints). */
int ob_cmd_parse(const ob_command_spec *spec, int argc, char **argv, ob_strlist *positional);
/* Prints "onebit: <context>: <last error>" to stderr and returns 1. */
int ob_cmd_fail(const char *context);

#endif
