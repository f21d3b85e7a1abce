/* commands.c — the table of subcommands. Add one line per subcommand (and its file in meson.build). */
#include "commands.h"

#include <stddef.h>

/* Each cmd_*.c defines one of these. */

const struct qn_command qn_commands[] = {
    { NULL, NULL, NULL },
};
