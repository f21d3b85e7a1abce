/* vk_stack.c — device, board, model and session from the common options (see vk_stack.h). */
#include "qn_time.h"
#include "vk_stack.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stream.h"

static int open_model(struct qn_vk_stack *st, const struct qn_cli_common *o)
{
    struct qn_model_params mp;
    qn_model_default_params(&mp);
    mp.reserve_bytes = st->board.mem.reserve_bytes;
    mp.expert_cache = o->expert_cache;
    mp.prefetch = o->prefetch;
    mp.expert_policy = o->expert_policy;
    mp.expert_hot = o->expert_hot;
    mp.expert_hot_from = o->expert_hot_from;
    mp.expert_trace = o->expert_trace;
    if (o->experts) mp.experts_host = !strcmp(o->experts, "host");   /* else env QNEXT_EXPERTS */
    enum qn_io_mode io = QN_IO_AUTO;
    int rc = o->io ? qn_io_mode_parse(o->io, &io) : 0;
    mp.io_mode = (int)io;
    double t0 = qn_now_s();
    if (!rc) rc = qn_model_load(&st->m, st->v, o->model, &mp);
    st->load_s = qn_now_s() - t0;
    return rc;
}

int qn_vk_stack_open(struct qn_vk_stack *st, const struct qn_cli_common *o, struct qn_session_params sp)
{
    memset(st, 0, sizeof *st);
    struct qn_vk_params vp;
    qn_vk_default_params(&vp);
    vp.device = o->device;
    int rc = qn_vk_open(&st->v, &vp);
    const char *vb = getenv("QNEXT_VRAM_BUDGET"); /* e.g. 8G: plan as if the device had that much (shared GPUs) */
    uint64_t budget = 0;
    if (!rc && vb && *vb && !(rc = qn_cli_size("", "QNEXT_VRAM_BUDGET", vb, &budget)))
        rc = qn_mem_set_budget(st->v, budget);
    if (!rc) {
        struct qn_board_device dev;
        qn_caps_board_device(qn_vk_caps(st->v), &dev);
        rc = qn_board_select(o->board, &dev, &st->board);
    }
    if (!rc) rc = open_model(st, o);
    if (!rc) {
        qn_vk_stack_tune(&st->board, &sp.tune);
        sp.profile = o->profile;
        rc = qn_session_new(&st->s, st->m, &sp);
    }
    if (rc) qn_vk_stack_close(st);
    return rc;
}

void qn_vk_stack_tune(const struct qn_board *b, struct qn_fwd_tune *t)
{
    t->matvec_wg = b->tune.matvec_wg;
    t->matvec_rows = b->tune.matvec_rows;
    t->norm_wg = b->tune.norm_wg;
    t->wy_seg = b->tune.gdn_wy_seg;
}

void qn_vk_stack_close(struct qn_vk_stack *st)
{
    qn_session_free(&st->s);
    qn_model_free(&st->m);
    qn_vk_close(&st->v);
}
