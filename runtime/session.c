/* session.c — a sequence on the GPU (see session.h): chunking, the cache of recorded calls, submits, reads. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "expert_host.h"
#include "model_stream.h"
#include "qn_log.h"

#define NREC 8        /* recorded call shapes kept */
#define NPROF 160     /* op families (or kernels, QNEXT_PROFILE_DISPATCH=1) in the profile */

struct recording {
    qn_cmd *cmd;
    struct qn_fwd_call call;
    uint64_t gen;     /* buffer generation it was recorded against */
    uint64_t used;    /* last use, for replacement */
};

struct prof {
    char label[48];
    double ms[2];     /* [0] decode calls, [1] prompt calls */
    uint64_t n[2];    /* regions counted */
};

struct qn_session {
    const qn_model *m;
    struct qn_session_params p;
    qn_fwd f;
    int64_t pos;
    uint64_t gen, tick;
    struct recording rec[NREC];
    struct prof prof[NPROF];
    int nprof;
    uint64_t prof_tokens[2];
    uint64_t prof_disp[2];  /* dispatches recorded (decode, prompt) */
    /* streaming (m->stream): the call recorded in segments, one command buffer each */
    qn_cmd **seg;             /* [2 + 2 L]: embed, route/experts per layer, head */
    struct qn_fwd_call seg_call;
    uint64_t seg_gen;
    bool seg_ok;
    bool seg_times;           /* timestamps around every segment (env QNEXT_STREAM_GPU_TIMES=0: none) */
    qn_buf *rb_ids;           /* int32 [chunk, K] router ids, copied at the end of each route segment */
    qn_buf *rb_glog;          /* f32 [chunk, E] the next layer's router logits (wide guesses), or NULL */
    uint64_t tokens;          /* tokens run, for the stats */
};

void qn_session_default_params(struct qn_session_params *p)
{
    memset(p, 0, sizeof *p);
    p->ctx = 4096;
    p->chunk = 0; /* auto_chunk() */
    qn_fwd_default_tune(&p->tune);
}

/* The prompt chunk when the caller leaves it to the session (chunk 0, or env QNEXT_CHUNK=auto): the largest of 4096,
 * 2048, 1024 and 512 tokens (at most the context, at least 512) whose activations (qn_fwd_token_bytes, ~260 KB a token
 * for the 80B model: 1.07 GB at 4096) take at most a quarter of the device memory still free after the model.
 * H100 run 15, 80B Q4_K_M: a 4096-token prompt in one chunk of 4096 ran at 3659 tok/s, in chunks of 2048 at 3065, in
 * chunks of 512 at ~1650. */
static uint32_t auto_chunk(const qn_model *m, uint32_t ctx)
{
    struct qn_mem_stats ms;
    qn_mem_stats(m->v, &ms);
    uint64_t freeb = ms.device_budget > ms.device_used ? ms.device_budget - ms.device_used : 0, tb = qn_fwd_token_bytes(m);
    uint32_t c = 4096;
    while (c > 512 && (c > ctx || (uint64_t)c * tb > freeb / 4)) c /= 2;
    QN_INFO("prompt chunk %u tokens (%.2f GB of activations; %.1f GB of device memory free)", c, (double)c * tb * 1e-9,
             (double)freeb * 1e-9);
    return c;
}

static int stream_alloc(qn_session *s)
{
    const char *e = getenv("QNEXT_STREAM_GPU_TIMES");
    s->seg_times = !(e && !strcmp(e, "0")) && qn_vk_caps(s->m->v)->timestamps;
    s->seg = calloc((size_t)(2 + 2 * s->m->c.num_layers), sizeof *s->seg);
    if (!s->seg) return qn_fail(-ENOMEM, "out of memory");
    int rc = qn_buf_create(s->m->v, QN_MEM_READBACK, sizeof(int32_t) * s->p.chunk * (uint64_t)s->m->c.top_k,
                           "router ids readback", &s->rb_ids);
    if (!rc && qn_mst_guess_width(s->m)) /* --prefetch above top-k: the host ranks the guess logits */
        rc = qn_buf_create(s->m->v, QN_MEM_READBACK, sizeof(float) * s->p.chunk * (uint64_t)s->m->c.num_experts,
                           "guess logits readback", &s->rb_glog);
    return rc;
}

int qn_session_new(qn_session **out, const qn_model *m, const struct qn_session_params *p)
{
    *out = NULL;
    qn_session *s = calloc(1, sizeof *s);
    if (!s) return qn_fail(-ENOMEM, "out of memory");
    if (p) s->p = *p;
    else qn_session_default_params(&s->p);
    if (!s->p.ctx) s->p.ctx = 4096;
    const char *ce = getenv("QNEXT_CHUNK"); /* prompt tokens per submission, over the caller's (A/B runs); or auto */
    if (ce && atoi(ce) > 0 && atoi(ce) <= 65536) s->p.chunk = (uint32_t)atoi(ce);
    if (ce && !strcmp(ce, "auto")) s->p.chunk = 0;
    int64_t maxpos = m->c.max_position_embeddings > 0 ? m->c.max_position_embeddings : s->p.ctx;
    if (s->p.ctx > maxpos) s->p.ctx = (uint32_t)maxpos;
    if (!s->p.chunk) s->p.chunk = auto_chunk(m, s->p.ctx);
    s->m = m;
    if (m->stream && s->p.chunk > qn_mst_max_tokens(m)) s->p.chunk = qn_mst_max_tokens(m); /* union fits the slots */
    if (m->stream) s->p.tune.guess_next = qn_mst_wants_guess(m);   /* prefetch: the next layer's router guesses */
    int rc = m->stream ? stream_alloc(s) : 0;
    if (rc) {
        qn_session_free(&s);
        return rc;
    }
    rc = qn_fwd_init(&s->f, m, &s->p.tune, s->p.chunk, s->p.ctx);
    if (!rc && m->host_tier) /* the host tier's VRAM cache admits experts by the routed ids of every layer */
        rc = qn_buf_create(m->v, QN_MEM_READBACK, sizeof(int32_t) * (uint64_t)m->c.num_layers * s->p.chunk *
                           (uint64_t)m->c.top_k, "routed ids readback", &s->f.rb_lids);
    struct qn_eh_gather g;
    if (!rc && qn_eh_gather_info(m, 0, &g)) /* QNEXT_HOST_GATHER=1: decode copies host experts into VRAM staging */
        rc = qn_pipe_get(m->v, QN_K_EXPERT_GATHER, (uint32_t[]){ 256 }, 1, &s->f.gather);
    if (rc) {
        qn_session_free(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void qn_session_free(qn_session **ps)
{
    qn_session *s = *ps;
    if (!s) return;
    for (int i = 0; i < NREC; i++) qn_cmd_destroy(&s->rec[i].cmd);
    for (int i = 0; s->seg && i < 2 + 2 * s->m->c.num_layers; i++) qn_cmd_destroy(&s->seg[i]);
    free(s->seg);
    qn_buf_destroy(s->m->v, &s->rb_ids);
    qn_buf_destroy(s->m->v, &s->rb_glog);
    qn_buf_destroy(s->m->v, &s->f.rb_lids);
    qn_fwd_free(&s->f);
    free(s);
    *ps = NULL;
}

int qn_session_reset(qn_session *s)
{
    s->pos = 0;
    return qn_fwd_reset(&s->f);
}

int64_t qn_session_pos(const qn_session *s) { return s->pos; }

uint32_t qn_session_chunk(const qn_session *s) { return s->p.chunk; }

/* ---- recordings ---------------------------------------------------------------------------------- */

static bool same_call(const struct qn_fwd_call *a, const struct qn_fwd_call *b)
{
    return a->T == b->T && a->out == b->out && a->k == b->k && a->hidden == b->hidden && a->profile == b->profile;
}

/* The command buffer for this call shape: a cached recording, or a new one (replacing the least recently
 * used). */
static int recording(qn_session *s, const struct qn_fwd_call *call, qn_cmd **out)
{
    struct recording *best = &s->rec[0];
    for (int i = 0; i < NREC; i++) {
        struct recording *r = &s->rec[i];
        if (r->cmd && r->gen == s->gen && same_call(&r->call, call)) {
            r->used = ++s->tick;
            *out = r->cmd;
            return 0;
        }
        if (!r->cmd || r->used < best->used) best = r;
    }
    int rc = 0;
    if (!best->cmd) QN_TRY(qn_cmd_create(s->m->v, &best->cmd));
    best->gen = 0;
    QN_TRY(qn_cmd_begin(best->cmd));
    rc = qn_fwd_record(&s->f, best->cmd, call);
    int rc2 = qn_cmd_end(best->cmd);
    QN_TRY(rc ? rc : rc2);
    best->call = *call;
    best->gen = s->gen;
    best->used = ++s->tick;
    *out = best->cmd;
done:
    return rc;
}

static void profile_add(qn_session *s, const qn_cmd *c, uint32_t T)
{
    int kind = T > 1;
    s->prof_tokens[kind] += T;
    s->prof_disp[kind] += qn_cmd_ndispatch(c);
    for (uint32_t i = 0; i < qn_cmd_nregions(c); i++) {
        const char *label;
        double ms = qn_cmd_region(c, i, &label);
        int j = 0;
        while (j < s->nprof && strcmp(s->prof[j].label, label)) j++;
        if (j == s->nprof) {
            if (s->nprof == NPROF) continue;
            snprintf(s->prof[j].label, sizeof s->prof[j].label, "%s", label);
            s->prof[j].ms[0] = s->prof[j].ms[1] = 0;
            s->prof[j].n[0] = s->prof[j].n[1] = 0;
            s->nprof++;
        }
        if (ms == ms) {
            s->prof[j].ms[kind] += ms;
            s->prof[j].n[kind]++;
        }
    }
}

/* ---- one call of up to `chunk` tokens ---------------------------------------------------------------- */

static int ensure_cap(qn_session *s, int64_t need)
{
    if (need <= (int64_t)s->f.cap) return 0;
    int64_t maxpos = s->m->c.max_position_embeddings > 0 ? s->m->c.max_position_embeddings : INT32_MAX;
    int64_t cap = (int64_t)s->f.cap * 2;
    while (cap < need) cap *= 2;
    if (cap > maxpos) cap = need > maxpos ? need : maxpos;
    if (cap > INT32_MAX / 2) return qn_fail(-ERANGE, "context of %lld positions is too long", (long long)need);
    int rc = qn_fwd_grow(&s->f, (uint32_t)cap, (uint32_t)s->pos);
    if (!rc) s->gen++;
    return rc;
}

/* ---- streaming: a call as segments, experts made resident between a layer's route and experts ------- */

static int record_segs(qn_session *s, const struct qn_fwd_call *call)
{
    if (s->seg_ok && s->seg_gen == s->gen && same_call(&s->seg_call, call)) return 0;
    s->seg_ok = false;
    int L = s->m->c.num_layers, rc = 0;
    for (int i = 0; !rc && i < 2 + 2 * L; i++) {
        enum qn_fwd_seg seg = i == 0 ? QN_FWD_SEG_EMBED : i == 1 + 2 * L ? QN_FWD_SEG_HEAD
                              : (i - 1) % 2 == 0 ? QN_FWD_SEG_ROUTE : QN_FWD_SEG_EXPERTS;
        if (!s->seg[i]) {
            if ((rc = qn_cmd_create(s->m->v, &s->seg[i]))) break;
            qn_cmd_set_spin_default(s->seg[i], 0); /* streaming: the reader threads need the cores (no poll A/B yet) */
        }
        if ((rc = qn_cmd_begin(s->seg[i]))) break;
        if (s->seg_times) /* GPU busy per segment kind for the stats (read back in seg_times) */
            qn_cmd_mark(s->seg[i], seg == QN_FWD_SEG_ROUTE ? "stream.route" : seg == QN_FWD_SEG_EXPERTS ? "stream.experts"
                                                                                                       : "stream.other");
        rc = qn_fwd_record_seg(&s->f, s->seg[i], call, seg, i == 0 || i == 1 + 2 * L ? 0 : (i - 1) / 2);
        if (!rc && seg == QN_FWD_SEG_ROUTE) { /* the ids to the host in the same submission */
            qn_cmd_barrier(s->seg[i]);
            rc = qn_cmd_copy(s->seg[i], s->f.ids, 0, s->rb_ids, 0, sizeof(int32_t) * call->T * (uint64_t)s->m->c.top_k);
            if (!rc && s->rb_glog && s->f.g_mm && (i - 1) / 2 + 1 < L) /* the guess node's logits, for the host */
                rc = qn_cmd_copy(s->seg[i], s->f.g_mm, 0, s->rb_glog, 0,
                                 sizeof(float) * call->T * (uint64_t)s->m->c.num_experts);
        }
        if (!rc) qn_cmd_barrier(s->seg[i]); /* orders it before the next segment, which may be submitted unwaited */
        int rc2 = qn_cmd_end(s->seg[i]);
        if (!rc) rc = rc2;
    }
    if (rc) return rc;
    s->seg_call = *call;
    s->seg_gen = s->gen;
    s->seg_ok = true;
    return 0;
}

/* After the head: every segment has completed (each ends with a full barrier); their timestamps to the stats. */
static int seg_times(qn_session *s)
{
    double ms[3] = { 0, 0, 0 }, in_wait = 0;
    int rc = 0, L = s->m->c.num_layers;
    for (int i = 0; !rc && i < 2 + 2 * L; i++) {
        const char *label;
        if ((rc = qn_cmd_wait(s->seg[i])) || !qn_cmd_nregions(s->seg[i])) continue;
        double t = qn_cmd_region(s->seg[i], 0, &label);
        t = t == t ? t : 0;
        ms[!strcmp(label, "stream.route") ? 0 : !strcmp(label, "stream.experts") ? 1 : 2] += t;
        if (i < 2 * L) in_wait += t;   /* all but the last experts and the head run inside route waits */
    }
    if (!rc) qn_mst_note_gpu(s->m, ms[0], ms[1], ms[2], in_wait);
    return rc;
}

/* Every segment is submitted through qn_mst_submit (signalling the compute timeline) and none is waited by a
 * fence but the head: per layer route(l) -> qn_mst_layer (waits for route(l) on the timeline, reads the ids and
 * the guess for l + 1, starts reads and slot copies) -> experts(l) (waits on the GPU for its copies). Segments
 * end with a full barrier, so each is ordered after the one before on the compute queue. */
static int run_streaming(qn_session *s, const struct qn_fwd_call *call)
{
    const qn_model *m = s->m;
    int L = m->c.num_layers, n = (int)call->T * m->c.top_k;
    int rc = record_segs(s, call);
    if (!rc) rc = qn_mst_submit(m, s->seg[0], -1);
    for (int l = 0; !rc && l < L; l++) {
        rc = qn_mst_submit(m, s->seg[1 + 2 * l], -1);
        /* the guess for l + 1: the GPU's top-k ids, or (wide guesses) the logits the host ranks after the wait */
        struct qn_mst_guess g = { 0 };
        if (s->f.rb_guess && l + 1 < L) {
            g.ids = s->f.rb_guess->map;
            g.n = n;
            g.logits = s->rb_glog ? s->rb_glog->map : NULL;
            g.T = (int)call->T;
        }
        if (!rc) rc = qn_mst_layer(m, l, s->rb_ids->map, n, &g);
        if (!rc) rc = qn_mst_submit(m, s->seg[2 + 2 * l], l);
    }
    if (!rc) rc = qn_mst_submit(m, s->seg[1 + 2 * L], -1);
    if (!rc) rc = qn_cmd_wait(s->seg[1 + 2 * L]);
    if (!rc && s->seg_times) rc = seg_times(s);
    return rc;
}

/* Submit a recorded call and wait for it; with the host tier's VRAM cache, table rows for finished copies first and
 * the admissions of the call's routed experts after it (expert_host.h: between calls, off the critical path). */
static int run_cmd(qn_session *s, qn_cmd *c, uint32_t T)
{
    if (!s->m->host_tier) return qn_cmd_run(c);
    struct qn_tl_point w;
    int rc = qn_eh_before(s->m, T, &w);
    if (!rc) rc = w.tl ? qn_cmd_submit_tl(c, &w, 1, NULL) : qn_cmd_submit(c);
    if (!rc) rc = qn_cmd_wait(c);
    if (!rc) rc = qn_eh_after(s->m, s->f.rb_lids->map, T, s->p.chunk);
    return rc;
}

static int run(qn_session *s, const int32_t *tokens, uint32_t T, enum qn_fwd_out out, uint32_t k, bool hidden)
{
    int rc = ensure_cap(s, s->pos + T);
    if (rc) return rc;
    int ch = qn_fwd_outputs(&s->f, out == QN_FWD_LOGITS_ALL ? T : 1, k, hidden);
    if (ch < 0) return ch;
    if (ch) s->gen++;
    struct qn_fwd_call call = { .T = T, .out = out, .k = out == QN_FWD_TOPK ? k : 0, .hidden = hidden,
                                .profile = s->p.profile };
    uint32_t pos = (uint32_t)s->pos;
    if (s->m->stream) {
        call.profile = false;
        memcpy(s->f.tok->map, tokens, sizeof *tokens * T);
        memcpy(s->f.pos->map, &pos, sizeof pos);
        if ((rc = run_streaming(s, &call))) return rc;
        s->pos += T;
        s->tokens += T;
        return 0;
    }
    qn_cmd *c;
    if ((rc = recording(s, &call, &c))) return rc;
    memcpy(s->f.tok->map, tokens, sizeof *tokens * T);
    memcpy(s->f.pos->map, &pos, sizeof pos);
    if ((rc = run_cmd(s, c, T))) return rc;
    if (s->p.profile) profile_add(s, c, T);
    s->pos += T;
    s->tokens += T;
    return 0;
}

static int check_tokens(const qn_session *s, const int32_t *tokens, int n)
{
    int V = s->m->c.vocab_size;
    if (n < 1) return qn_fail(-EINVAL, "forward over %d tokens", n);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return qn_fail(-ERANGE, "token id %d (position %d) is outside the vocabulary [0, %d)", tokens[t], t, V);
    return 0;
}

/* Every chunk but the last; returns the tokens left for the last call. hidden/logits of the early chunks
 * are copied out as they come. */
static int prefix(qn_session *s, const int32_t *tokens, int n, float *logits, int all, float *hidden, int *at)
{
    const qn_config *c = &s->m->c;
    size_t V = (size_t)c->vocab_size, H = (size_t)c->hidden_size;
    int chunk = (int)s->p.chunk;
    *at = 0;
    while (n - *at > chunk) {
        int rc = run(s, tokens + *at, (uint32_t)chunk, logits && all ? QN_FWD_LOGITS_ALL : QN_FWD_NONE, 0, hidden);
        if (rc) return rc;
        if (logits && all) memcpy(logits + (size_t)*at * V, s->f.rb_logits->map, sizeof(float) * V * (size_t)chunk);
        if (hidden)
            for (int l = 0; l <= c->num_layers; l++)
                memcpy(hidden + ((size_t)l * (size_t)n + (size_t)*at) * H,
                       (const float *)s->f.rb_hidden->map + (size_t)l * (size_t)chunk * H, sizeof(float) * H * (size_t)chunk);
        *at += chunk;
    }
    return 0;
}

int qn_session_forward(qn_session *s, const int32_t *tokens, int n, float *logits, int all, float *hidden)
{
    const qn_config *c = &s->m->c;
    size_t V = (size_t)c->vocab_size, H = (size_t)c->hidden_size;
    int at, rc = check_tokens(s, tokens, n);
    if (!rc) rc = prefix(s, tokens, n, logits, all, hidden, &at);
    if (rc) return rc;
    uint32_t T = (uint32_t)(n - at);
    enum qn_fwd_out out = !logits ? QN_FWD_NONE : all ? QN_FWD_LOGITS_ALL : QN_FWD_LOGITS_LAST;
    if ((rc = run(s, tokens + at, T, out, 0, hidden != NULL))) return rc;
    if (logits) memcpy(logits + (all ? (size_t)at * V : 0), s->f.rb_logits->map, sizeof(float) * V * (all ? T : 1));
    if (hidden)
        for (int l = 0; l <= c->num_layers; l++)
            memcpy(hidden + ((size_t)l * (size_t)n + (size_t)at) * H,
                   (const float *)s->f.rb_hidden->map + (size_t)l * T * H, sizeof(float) * H * T);
    return 0;
}

int qn_session_greedy(qn_session *s, const int32_t *tokens, int n, int32_t *next, float *logit)
{
    int at, rc = check_tokens(s, tokens, n);
    if (!rc) rc = prefix(s, tokens, n, NULL, 0, NULL, &at);
    if (!rc) rc = run(s, tokens + at, (uint32_t)(n - at), QN_FWD_ARGMAX, 0, false);
    if (rc) return rc;
    memcpy(next, s->f.rb_tok->map, sizeof *next);
    if (logit) memcpy(logit, (const char *)s->f.rb_tok->map + 4, sizeof *logit);
    if (*next < 0) return qn_fail(-EDOM, "every logit is NaN at position %lld", (long long)s->pos - 1);
    return 0;
}

int qn_session_topk(qn_session *s, const int32_t *tokens, int n, int k, int32_t *ids, float *vals)
{
    if (k < 1 || k > 256 || k > s->m->c.vocab_size)
        return qn_fail(-EINVAL, "top-k with k = %d (1 .. min(256, vocab))", k);
    int at, rc = check_tokens(s, tokens, n);
    if (!rc) rc = prefix(s, tokens, n, NULL, 0, NULL, &at);
    if (!rc) rc = run(s, tokens + at, (uint32_t)(n - at), QN_FWD_TOPK, (uint32_t)k, false);
    if (rc) return rc;
    const uint32_t *cand = s->f.rb_cand->map;
    for (int i = 0; i < k; i++) {
        memcpy(&vals[i], &cand[2 * i], sizeof(float));
        ids[i] = (int32_t)cand[2 * i + 1];
    }
    return 0;
}

void qn_session_profile(const qn_session *s, FILE *out)
{
    if (!s->p.profile) return;
    fprintf(out, "qnext profile: GPU ms per token by op family on '%s'\n", qn_vk_caps(s->m->v)->name);
    fprintf(out, "  %-28s %12s %12s %10s\n", "op family", "decode", "prompt", "decode n");
    fprintf(out, "  %-28s %12llu %12llu\n", "(tokens)", (unsigned long long)s->prof_tokens[0],
            (unsigned long long)s->prof_tokens[1]);
    double tot[2] = { 0, 0 };
    for (int j = 0; j < s->nprof; j++) {
        double v[2];
        for (int k = 0; k < 2; k++) {
            v[k] = s->prof_tokens[k] ? s->prof[j].ms[k] / (double)s->prof_tokens[k] : 0;
            tot[k] += v[k];
        }
        double n = s->prof_tokens[0] ? (double)s->prof[j].n[0] / (double)s->prof_tokens[0] : 0;
        fprintf(out, "  %-28s %12.4f %12.4f %10.1f\n", s->prof[j].label, v[0], v[1], n);
    }
    fprintf(out, "  %-28s %12.4f %12.4f\n", "total", tot[0], tot[1]);
    for (int k = 0; k < 2; k++)
        if (tot[k] > 0) fprintf(out, "  %s: %.1f tokens/s of GPU time\n", k ? "prompt" : "decode", 1000.0 / tot[k]);
    if (s->prof_tokens[0])
        fprintf(out, "  decode: %.1f dispatches per token\n", (double)s->prof_disp[0] / (double)s->prof_tokens[0]);
}

void qn_session_stats(const qn_session *s, FILE *out) { qn_mst_print_stats(s->m, s->tokens, out); }
