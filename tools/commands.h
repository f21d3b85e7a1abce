/* commands.h — the subcommands of the qnext tool; each lives in its own cmd_*.c file. */
#ifndef QN_COMMANDS_H
#define QN_COMMANDS_H

struct qn_command {
    const char *name;
    const char *summary;               /* one line for 'qnext --help' */
    int (*main)(int argc, char **argv); /* argv[0] is the subcommand name; returns the exit status */
};

extern const struct qn_command qn_commands[];

#endif
