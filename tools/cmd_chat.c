/* onebit chat (onebit-chat): an interactive conversation with a model. Each
 * line is a message; the reply streams as it is generated; earlier turns stay
 * in the context. /reset forgets them, /help lists the commands, /quit or
 * end of input leaves. When stdin is not a terminal (a pipe, a file) it runs
 * in line mode: no banner and no prompt, one reply per input line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer_common.h"

/* Streams a reply; its trailing newlines (the blank line that ended it) are
 * held back so that every reply ends in exactly one. */
static void print_text(const char *text, size_t len, void *user) {
    int *held = user;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            (*held)++;
            continue;
        }
        for (; *held > 0; (*held)--)
            putchar('\n');
        putchar(text[i]);
    }
    fflush(stdout);
}

static void print_help(void) {
    printf("commands: /reset  forget the conversation\n"
           "          /help   this list\n"
           "          /quit   leave (end of input does too)\n"
           "anything else is a message; replies end at a blank line, end-of-text or --max-tokens\n");
}

/* Reads one line of any length into *line (without its newline); false at EOF. */
static bool read_line(char **line, size_t *cap) {
    ssize_t n = getline(line, cap, stdin);
    if (n < 0)
        return false;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
        (*line)[--n] = 0;
    return true;
}

int ob_cmd_chat(int argc, char **argv) {
    infer_flags f;
    infer_flags_default(&f, 128);
    const char *user_prefix = "", *assistant_prefix = "";
    const ob_arg args[] = {
        INFER_MODEL_ARGS(f),
        INFER_SAMPLER_ARGS(f),
        {"--user-prefix", OB_ARG_STRING, &user_prefix, "TEXT", "text before each message in the transcript (e.g. "
         "\"User: \")", NULL, 0, 0, NULL},
        {"--assistant-prefix", OB_ARG_STRING, &assistant_prefix, "TEXT", "text before each reply (e.g. \"Assistant:\")",
         NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Chat with a model: each line you type is a message, the reply streams back, and earlier turns "
                   "stay in its context.",
        .usage = "--model-dir DIR | --model FILE [options]",
        .details = "Commands: /reset (forget the conversation), /help, /quit; end of input also quits. When stdin\n"
                   "is not a terminal, every line is a message and only the replies are printed (line mode).\n"
                   "The transcript is plain text: <user-prefix>message\\n<assistant-prefix>reply\\n ...; when it\n"
                   "outgrows the context, its oldest tokens slide out.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    infer_env e;
    if ((rc = infer_env_open(argv[0], &f, true, &e)) >= 0)
        return rc;
    ob_chat_options co = {user_prefix, assistant_prefix, f.max_tokens};
    ob_chat *chat;
    if (ob_chat_create(e.session, e.sampler, e.tok, &co, &chat)) {
        infer_env_close(&e);
        return ob_cmd_fail(argv[0]);
    }
    bool interactive = isatty(fileno(stdin)) != 0;
    if (interactive)
        printf("onebit chat: type a message, /help for commands, /quit to leave\n");
    char *line = NULL;
    size_t cap = 0;
    rc = 0;
    for (;;) {
        if (interactive) {
            printf("> ");
            fflush(stdout);
        }
        if (!read_line(&line, &cap)) {
            if (interactive)
                printf("\n");
            break;
        }
        if (line[0] == 0)
            continue;
        if (line[0] == '/') {
            if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0)
                break;
            if (strcmp(line, "/reset") == 0) {
                ob_chat_reset(chat);
                printf("(conversation reset)\n");
            } else if (strcmp(line, "/help") == 0) {
                print_help();
            } else {
                printf("unknown command %s; /help lists the commands\n", line);
            }
            fflush(stdout);
            continue;
        }
        ob_generate_result res;
        int held = 0;
        ob_status st = ob_chat_send(chat, line, print_text, &held, &res);
        printf("\n");
        fflush(stdout);
        if (st) {
            rc = ob_cmd_fail(argv[0]);
            break;
        }
        ob_log(OB_LOG_DEBUG, "reply: %d tokens (%s), %.1f tok/s, context %d/%d", res.generated,
               ob_stop_reason_name(res.stop), res.generated / (res.decode_seconds > 0 ? res.decode_seconds : 1e-9),
               ob_infer_position(e.session), ob_infer_context(e.session));
    }
    free(line);
    ob_chat_free(chat);
    infer_env_close(&e);
    ob_args_free(&spec, NULL);
    return rc;
}
