/* qnext.c — the command-line tool: dispatches `qnext SUBCOMMAND ...` to tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "qn_version.h"

static void usage(FILE *f)
{
    fprintf(f,
            "qnext %s — Qwen3-Next on any Vulkan GPU, routed experts streamed from disk\n\n"
            "usage: qnext COMMAND [OPTIONS]\n\ncommands:\n", QN_VERSION);
    for (const struct qn_command *c = qn_commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fprintf(f, "\n'qnext COMMAND --help' describes a command's options.\n"
               "'qnext --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qnext %s\n", QN_VERSION);
        return 0;
    }
    for (const struct qn_command *c = qn_commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->main(argc - 1, argv + 1);
    fprintf(stderr, "qnext: '%s' is not a command. See 'qnext --help'.\n", argv[1]);
    return 2;
}
