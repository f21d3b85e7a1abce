/* vk_stack.h — the Vulkan device, board profile, model and session that the common options (cli.h) ask for,
 * opened in one place for the Vulkan engine (engine_vk.c) and `qnext bench`. */
#ifndef QN_VK_STACK_H
#define QN_VK_STACK_H

#include "board.h"
#include "cli.h"
#include "session.h"

struct qn_vk_stack {
    qn_vk *v;
    struct qn_board board; /* matched to the device, or --board */
    qn_model *m;
    qn_session *s;
    double load_s;         /* seconds qn_model_load took */
};

/* Open device (--device), board (--board), model (-m, --expert-cache, --io, --prefetch) and a session with the
 * caller's session parameters `sp` (defaults, chunk, ctx, tune ...) plus the board's kernel tuning and
 * --profile. On failure everything opened is closed again. */
int qn_vk_stack_open(struct qn_vk_stack *st, const struct qn_cli_common *o, struct qn_session_params sp);
void qn_vk_stack_close(struct qn_vk_stack *st); /* safe on a zeroed or partly opened stack */
/* The board's kernel tuning into a session's forward tune (matvec / norm workgroups, the delta rule's segments). */
void qn_vk_stack_tune(const struct qn_board *b, struct qn_fwd_tune *t);

#endif
