/* experts.c — the routed-expert slot cache: residency table, pinning by timeline stamps, replacement
 * policies (LRU, LFU with aging, pinned hot set), prefetch bookkeeping, statistics, trace replay.
 * Pure host logic; see experts.h for the contract and docs/streaming.md for the protocol. */
#include "experts.h"

#include "qn_err.h"
#include "qn_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ */
/* Sizing.                                                                                           */

int qn_exp_min_slots(int top_k, int n_prefetch, int n_hot) { return top_k + n_prefetch + n_hot; }

int qn_exp_slots_for_budget(uint64_t budget_bytes, uint64_t expert_bytes, int top_k, int n_prefetch, int n_hot,
                            int64_t n_total, int *n_slots)
{
    if (!expert_bytes || top_k < 1 || n_prefetch < 0 || n_hot < 0)
        return qn_fail(-EINVAL, "expert cache: bad sizing (expert %llu bytes, top-k %d, prefetch %d, hot %d)",
                       (unsigned long long)expert_bytes, top_k, n_prefetch, n_hot);
    uint64_t fit = budget_bytes / expert_bytes;
    int need = qn_exp_min_slots(top_k, n_prefetch, n_hot);
    if (fit < (uint64_t)need)
        return qn_fail(-ENOSPC, "expert cache budget %.1f MiB holds %llu slots of %.2f MiB; at least %d are "
                       "needed (top-k %d + prefetch %d + hot %d) = %.1f MiB", (double)budget_bytes / 1048576.0,
                       (unsigned long long)fit, (double)expert_bytes / 1048576.0, need, top_k, n_prefetch, n_hot,
                       (double)need * (double)expert_bytes / 1048576.0);
    if (n_total > 0 && fit > (uint64_t)n_total) fit = (uint64_t)n_total;
    if (fit > INT32_MAX) fit = INT32_MAX;
    *n_slots = (int)fit;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* The cache.                                                                                         */

struct exp_slot {
    int32_t layer, expert;
    uint64_t stamp;
    uint8_t state;
    bool fixed, prefetched, used, pf_pending;
};

struct qn_exp_cache {
    struct qn_exp_params p;
    const struct qn_exp_policy *pol;
    void *ps;
    int n_slots;
    struct exp_slot *slots;
    int32_t *table;            /* [n_layers * n_experts] */
    int32_t *free_stack;
    int n_free;
    uint8_t *dirty;            /* [n_layers] */
    struct qn_exp_stats *st;   /* [n_layers] */
    int32_t *guess;            /* [n_layers * QN_EXP_MAX_K] unconsumed prefetch guesses */
    int *n_guess;              /* [n_layers] */
    int pf_held;               /* slots with pf_pending */
    uint64_t completed;        /* of the call in progress, for the evictable predicate */
    uint32_t *mark, gen;       /* [n_slots] scratch marks */
    uint64_t *stamps;          /* [n_slots] scratch */
};

static int32_t *tab(const qn_exp_cache *c, int32_t layer, int32_t expert)
{
    return &c->table[(int64_t)layer * c->p.n_experts + expert];
}

bool qn_exp_slot_evictable(const qn_exp_cache *c, int32_t slot)
{
    const struct exp_slot *s = &c->slots[slot];
    return s->state == QN_EXP_SLOT_READY && !s->fixed && s->stamp <= c->completed && c->mark[slot] != c->gen;
}

/* Start a call: slots marked with the new generation belong to it and are never its victims. */
static void mark_begin(qn_exp_cache *c)
{
    if (++c->gen == 0) {
        memset(c->mark, 0, (size_t)c->n_slots * sizeof *c->mark);
        c->gen = 1;
    }
}

static int check_params(const struct qn_exp_params *p)
{
    if (p->n_layers < 1 || p->n_experts < 1 || p->top_k < 1 || p->top_k > QN_EXP_MAX_K || p->top_k > p->n_experts)
        return qn_fail(-EINVAL, "expert cache: bad shape (%d layers, %d experts, top-k %d, max k %d)", p->n_layers,
                       p->n_experts, p->top_k, QN_EXP_MAX_K);
    if ((int64_t)p->n_layers * p->n_experts > INT32_MAX) return qn_fail(-EINVAL, "expert cache: too many experts");
    int need = qn_exp_min_slots(p->top_k, p->n_prefetch, p->n_hot);
    if (p->n_prefetch < 0 || p->n_hot < 0 || p->n_slots < need)
        return qn_fail(-ENOSPC, "expert cache: %d slots, at least %d are needed (top-k %d + prefetch %d + hot %d)",
                       p->n_slots, need, p->top_k, p->n_prefetch, p->n_hot);
    for (int i = 0; i < p->n_hot; i++) {
        int32_t l = p->hot[2 * i], e = p->hot[2 * i + 1];
        if (l < 0 || l >= p->n_layers || e < 0 || e >= p->n_experts)
            return qn_fail(-EINVAL, "expert cache: hot pair %d (%d, %d) out of range", i, l, e);
    }
    return 0;
}

static int cache_alloc(qn_exp_cache *c)
{
    int64_t n_tab = (int64_t)c->p.n_layers * c->p.n_experts;
    size_t L = (size_t)c->p.n_layers, S = (size_t)c->n_slots;
    c->slots = calloc(S, sizeof *c->slots);
    c->table = malloc((size_t)n_tab * sizeof *c->table);
    c->free_stack = malloc(S * sizeof *c->free_stack);
    c->dirty = calloc(L, 1);
    c->st = calloc(L, sizeof *c->st);
    c->guess = malloc(L * QN_EXP_MAX_K * sizeof *c->guess);
    c->n_guess = calloc(L, sizeof *c->n_guess);
    c->mark = calloc(S, sizeof *c->mark);
    c->stamps = malloc(S * sizeof *c->stamps);
    if (!c->slots || !c->table || !c->free_stack || !c->dirty || !c->st || !c->guess || !c->n_guess || !c->mark ||
        !c->stamps)
        return qn_fail(-ENOMEM, "expert cache: out of memory for %d slots", c->n_slots);
    for (int64_t i = 0; i < n_tab; i++) c->table[i] = -1;
    return 0;
}

int qn_exp_create(qn_exp_cache **out, const struct qn_exp_params *p)
{
    *out = NULL;
    int rc = check_params(p);
    if (rc < 0) return rc;
    qn_exp_cache *c = calloc(1, sizeof *c);
    if (!c) return qn_fail(-ENOMEM, "expert cache: out of memory");
    c->p = *p;
    c->p.hot = NULL;
    c->pol = p->policy ? p->policy : &qn_exp_policy_lru;
    c->n_slots = p->n_slots;
    if ((rc = cache_alloc(c)) < 0) goto fail;
    for (int s = 0; s < c->n_slots; s++) c->slots[s] = (struct exp_slot){ .layer = -1, .expert = -1 };
    for (int i = 0; i < p->n_hot; i++) {
        int32_t l = p->hot[2 * i], e = p->hot[2 * i + 1];
        if (*tab(c, l, e) >= 0) {
            rc = qn_fail(-EINVAL, "expert cache: hot pair (%d, %d) listed twice", l, e);
            goto fail;
        }
        c->slots[i] = (struct exp_slot){ .layer = l, .expert = e, .state = QN_EXP_SLOT_FILLING, .fixed = true };
        *tab(c, l, e) = i;
        c->dirty[l] = 1;
    }
    for (int s = c->n_slots - 1; s >= p->n_hot; s--) c->free_stack[c->n_free++] = s;
    struct qn_exp_policy_info info = { c->n_slots, p->n_layers, p->n_experts, p->n_hot, p->lfu_halflife };
    if ((rc = c->pol->init(&c->ps, &info)) < 0) goto fail;
    *out = c;
    return 0;
fail:
    c->pol = NULL;
    qn_exp_destroy(&c);
    return rc;
}

void qn_exp_destroy(qn_exp_cache **pc)
{
    qn_exp_cache *c = *pc;
    if (!c) return;
    if (c->pol) c->pol->fini(c->ps);
    free(c->slots);
    free(c->table);
    free(c->free_stack);
    free(c->dirty);
    free(c->st);
    free(c->guess);
    free(c->n_guess);
    free(c->mark);
    free(c->stamps);
    free(c);
    *pc = NULL;
}

static int check_ids(const qn_exp_cache *c, const char *what, int32_t layer, const int32_t *ids, int k, uint64_t use,
                     uint64_t completed)
{
    if (layer < 0 || layer >= c->p.n_layers)
        return qn_fail(-EINVAL, "expert %s: layer %d outside 0..%d", what, layer, c->p.n_layers - 1);
    if (k < 0 || k > QN_EXP_MAX_K) return qn_fail(-EINVAL, "expert %s: %d ids (max %d)", what, k, QN_EXP_MAX_K);
    if (use <= completed)
        return qn_fail(-EINVAL, "expert %s: use stamp %llu is not after the completed value %llu", what,
                       (unsigned long long)use, (unsigned long long)completed);
    for (int i = 0; i < k; i++) {
        if (ids[i] < 0 || ids[i] >= c->p.n_experts)
            return qn_fail(-EINVAL, "expert %s: layer %d id %d outside 0..%d", what, layer, ids[i], c->p.n_experts - 1);
        for (int j = 0; j < i; j++)
            if (ids[j] == ids[i]) return qn_fail(-EINVAL, "expert %s: layer %d id %d repeated", what, layer, ids[i]);
    }
    return 0;
}

/* Empty a slot that holds an expert (eviction or failed fill). */
static void slot_clear(qn_exp_cache *c, int32_t s, bool evicted)
{
    struct exp_slot *sl = &c->slots[s];
    struct qn_exp_stats *st = &c->st[sl->layer];
    if (evicted) st->evictions++;
    if (sl->prefetched && !sl->used) st->pf_fills_wasted++;
    if (sl->pf_pending) c->pf_held--;
    *tab(c, sl->layer, sl->expert) = -1;
    c->dirty[sl->layer] = 1;
    if (!sl->fixed) c->pol->on_remove(c->ps, s);
    *sl = (struct exp_slot){ .layer = -1, .expert = -1 };
}

/* A slot for a new expert: a free one, else the policy's victim. -1 if none is evictable now. */
static int32_t take_slot(qn_exp_cache *c)
{
    if (c->n_free) return c->free_stack[--c->n_free];
    int32_t s = c->pol->choose_victim(c->ps, c, qn_exp_slot_evictable);
    if (s < 0) return -1;
    if (s >= c->n_slots || !qn_exp_slot_evictable(c, s)) return -2;   /* a policy bug: refuse, never corrupt */
    slot_clear(c, s, true);
    return s;
}

static void slot_assign(qn_exp_cache *c, int32_t s, int32_t layer, int32_t expert, uint64_t use, bool prefetched)
{
    c->slots[s] = (struct exp_slot){ .layer = layer, .expert = expert, .stamp = use, .state = QN_EXP_SLOT_FILLING,
                                     .prefetched = prefetched, .pf_pending = prefetched };
    if (prefetched) c->pf_held++;
    *tab(c, layer, expert) = s;
    c->dirty[layer] = 1;
    c->pol->on_insert(c->ps, s, layer, expert);
}

/* Release the pending guess of a layer: count precision/recall against `used` (NULL: replaced). */
static void guess_consume(qn_exp_cache *c, int32_t layer, const int32_t *used, int k)
{
    const int32_t *g = &c->guess[(size_t)layer * QN_EXP_MAX_K];
    int n = c->n_guess[layer];
    if (!n) return;
    struct qn_exp_stats *st = &c->st[layer];
    if (used) {
        st->pf_guessed += (uint64_t)n;
        st->pf_used += (uint64_t)k;
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; used && j < k; j++)
            if (used[j] == g[i]) st->pf_correct++;
        int32_t s = *tab(c, layer, g[i]);
        if (s >= 0 && c->slots[s].pf_pending) {
            c->slots[s].pf_pending = false;
            c->pf_held--;
        }
    }
    c->n_guess[layer] = 0;
}

/* Too few evictable slots for `need` new ones: the completed value (< use: waiting for the submission
 * being prepared would deadlock) that frees enough, or 0 if there is none. */
static uint64_t wait_value(qn_exp_cache *c, int need, int avail, uint64_t use)
{
    int n = 0;
    for (int s = 0; s < c->n_slots; s++) {
        const struct exp_slot *sl = &c->slots[s];
        if (sl->state == QN_EXP_SLOT_READY && !sl->fixed && sl->stamp > c->completed && sl->stamp < use &&
            c->mark[s] != c->gen)
            c->stamps[n++] = sl->stamp;
    }
    if (avail + n < need) return 0;
    /* the (need - avail)-th smallest stamp: partial selection is enough for these sizes */
    for (int i = 0; i < need - avail; i++)
        for (int j = i + 1; j < n; j++)
            if (c->stamps[j] < c->stamps[i]) {
                uint64_t t = c->stamps[i];
                c->stamps[i] = c->stamps[j];
                c->stamps[j] = t;
            }
    return c->stamps[need - avail - 1];
}

/* Enough slots for `misses` new experts without touching this batch's hits (marked with gen)? */
static int ensure_room(qn_exp_cache *c, int misses, uint64_t use, struct qn_exp_result *out)
{
    if (misses <= c->n_free) return 0;
    int avail = c->n_free;
    for (int s = 0; s < c->n_slots && avail < misses; s++)
        if (qn_exp_slot_evictable(c, s)) avail++;
    if (avail >= misses) return 0;
    out->wait_for = wait_value(c, misses, avail, use);
    if (!out->wait_for)
        return qn_fail(-ENOSPC, "expert cache: %d slots needed, %d free or evictable, and waiting for earlier "
                       "submissions would not free enough: the rest are being filled, hot, or pinned by value %llu "
                       "itself (%d slots)", misses, avail, (unsigned long long)use, c->n_slots);
    return qn_fail(-EAGAIN, "expert cache: %d slots needed, %d evictable; wait for timeline value %llu",
                   misses, avail, (unsigned long long)out->wait_for);
}

static void result_init(struct qn_exp_result *out, int k)
{
    out->k = k;
    out->n_fill = out->n_hit = out->n_pending = 0;
    out->wait_for = 0;
}

/* Pin and count a resident id. */
static void lookup_hit(qn_exp_cache *c, int32_t s, uint64_t use, struct qn_exp_result *out, int i)
{
    struct exp_slot *sl = &c->slots[s];
    if (sl->stamp < use) sl->stamp = use;
    if (sl->prefetched && !sl->used) c->st[sl->layer].pf_fills_used++;
    sl->used = true;
    if (!sl->fixed) c->pol->on_access(c->ps, s, sl->layer, sl->expert);
    out->slot[i] = s;
    out->kind[i] = sl->state == QN_EXP_SLOT_READY ? QN_EXP_HIT : QN_EXP_PENDING;
    if (sl->state == QN_EXP_SLOT_READY) out->n_hit++;
    else out->n_pending++;
}

int qn_exp_lookup(qn_exp_cache *c, int32_t layer, const int32_t *ids, int k, uint64_t use, uint64_t completed,
                  struct qn_exp_result *out)
{
    int rc = check_ids(c, "lookup", layer, ids, k, use, completed);
    if (rc < 0) return rc;
    result_init(out, k);
    c->completed = completed;
    mark_begin(c);
    int misses = 0;
    int32_t s0[QN_EXP_MAX_K];
    for (int i = 0; i < k; i++) {
        s0[i] = *tab(c, layer, ids[i]);
        if (s0[i] >= 0) c->mark[s0[i]] = c->gen;
        else misses++;
    }
    if ((rc = ensure_room(c, misses, use, out)) < 0) {
        c->st[layer].waits++;
        return rc;
    }
    struct qn_exp_stats *st = &c->st[layer];
    guess_consume(c, layer, ids, k);
    for (int i = 0; i < k; i++)
        if (s0[i] >= 0) lookup_hit(c, s0[i], use, out, i);
    for (int i = 0; i < k; i++) {
        if (s0[i] >= 0) continue;
        int32_t s = take_slot(c);
        if (s < 0) return qn_fail(-EFAULT, "expert cache: policy %s found no victim after room was checked", c->pol->name);
        slot_assign(c, s, layer, ids[i], use, false);
        c->slots[s].used = true;
        out->slot[i] = s;
        out->kind[i] = QN_EXP_MISS;
        out->fill[out->n_fill++] = (struct qn_exp_fill){ layer, ids[i], s };
    }
    st->lookups++;
    st->accesses += (uint64_t)k;
    st->hits += (uint64_t)(out->n_hit + out->n_pending);
    st->pending += (uint64_t)out->n_pending;
    st->misses += (uint64_t)out->n_fill;
    st->fills += (uint64_t)out->n_fill;
    st->bytes_read += (uint64_t)out->n_fill * c->p.expert_bytes;
    return 0;
}

int qn_exp_prefetch(qn_exp_cache *c, int32_t layer, const int32_t *ids, int n, uint64_t use, uint64_t completed,
                    struct qn_exp_result *out)
{
    int rc = check_ids(c, "prefetch", layer, ids, n, use, completed);
    if (rc < 0) return rc;
    result_init(out, n);
    c->completed = completed;
    guess_consume(c, layer, NULL, 0);
    memcpy(&c->guess[(size_t)layer * QN_EXP_MAX_K], ids, (size_t)n * sizeof *ids);
    c->n_guess[layer] = n;
    mark_begin(c);
    for (int i = 0; i < n; i++)
        if (*tab(c, layer, ids[i]) >= 0) c->mark[*tab(c, layer, ids[i])] = c->gen;
    for (int i = 0; i < n; i++) {
        int32_t s = *tab(c, layer, ids[i]);
        out->slot[i] = s;
        if (s >= 0) {
            out->kind[i] = c->slots[s].state == QN_EXP_SLOT_READY ? QN_EXP_HIT : QN_EXP_PENDING;
            continue;
        }
        out->kind[i] = QN_EXP_SKIP;
        if (c->pf_held >= c->p.n_prefetch || (s = take_slot(c)) < 0) continue;
        slot_assign(c, s, layer, ids[i], use, true);
        out->slot[i] = s;
        out->kind[i] = QN_EXP_MISS;
        out->fill[out->n_fill++] = (struct qn_exp_fill){ layer, ids[i], s };
    }
    c->st[layer].pf_fills += (uint64_t)out->n_fill;
    c->st[layer].bytes_read += (uint64_t)out->n_fill * c->p.expert_bytes;
    return 0;
}

static int filling_slot(const qn_exp_cache *c, int32_t slot, const char *what)
{
    if (slot < 0 || slot >= c->n_slots) return qn_fail(-EINVAL, "expert cache: %s: slot %d outside 0..%d", what, slot, c->n_slots - 1);
    if (c->slots[slot].state != QN_EXP_SLOT_FILLING)
        return qn_fail(-EINVAL, "expert cache: %s: slot %d is not being filled", what, slot);
    return 0;
}

int qn_exp_fill_done(qn_exp_cache *c, int32_t slot)
{
    int rc = filling_slot(c, slot, "fill done");
    if (rc == 0) c->slots[slot].state = QN_EXP_SLOT_READY;
    return rc;
}

int qn_exp_fill_failed(qn_exp_cache *c, int32_t slot)
{
    int rc = filling_slot(c, slot, "fill failed");
    if (rc < 0) return rc;
    if (c->slots[slot].fixed) {      /* a hot slot stays reserved; its fill must be retried */
        return 0;
    }
    struct exp_slot *sl = &c->slots[slot];   /* nothing was read into it: its fill is not counted */
    struct qn_exp_stats *st = &c->st[sl->layer];
    if (sl->prefetched) st->pf_fills--;
    else st->fills--;
    st->bytes_read -= c->p.expert_bytes;
    if (!sl->used) sl->prefetched = false;  /* a guess never read is not "evicted unused" */
    slot_clear(c, slot, false);
    c->free_stack[c->n_free++] = slot;
    return 0;
}

int qn_exp_hot_fills(const qn_exp_cache *c, struct qn_exp_fill *out, int max)
{
    int n = 0;
    for (int s = 0; s < c->p.n_hot && n < max; s++)
        if (c->slots[s].state == QN_EXP_SLOT_FILLING)
            out[n++] = (struct qn_exp_fill){ c->slots[s].layer, c->slots[s].expert, s };
    return n;
}

void qn_exp_note_stall(qn_exp_cache *c, int32_t layer, uint64_t ns)
{
    if (layer >= 0 && layer < c->p.n_layers) c->st[layer].stall_ns += ns;
}

const int32_t *qn_exp_table(const qn_exp_cache *c) { return c->table; }
int qn_exp_n_slots(const qn_exp_cache *c) { return c->n_slots; }

bool qn_exp_table_dirty(const qn_exp_cache *c, int32_t layer)
{
    return layer >= 0 && layer < c->p.n_layers && c->dirty[layer];
}

void qn_exp_table_clean(qn_exp_cache *c, int32_t layer)
{
    if (layer < 0) memset(c->dirty, 0, (size_t)c->p.n_layers);
    else if (layer < c->p.n_layers) c->dirty[layer] = 0;
}

int qn_exp_slot_get(const qn_exp_cache *c, int32_t slot, struct qn_exp_slot_info *out)
{
    if (slot < 0 || slot >= c->n_slots) return qn_fail(-EINVAL, "expert cache: slot %d outside 0..%d", slot, c->n_slots - 1);
    const struct exp_slot *s = &c->slots[slot];
    *out = (struct qn_exp_slot_info){ s->layer, s->expert, s->stamp, s->state, s->fixed, s->prefetched, s->used };
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Invariants.                                                                                       */

static int check_slot(const qn_exp_cache *c, int32_t s, int *n_pf)
{
    const struct exp_slot *sl = &c->slots[s];
    if (sl->fixed != (s < c->p.n_hot)) return qn_fail(-EFAULT, "slot %d: fixed flag %d wrong", s, sl->fixed);
    if (sl->state == QN_EXP_SLOT_FREE) {
        if (sl->layer != -1 || sl->expert != -1 || sl->pf_pending || sl->fixed)
            return qn_fail(-EFAULT, "slot %d: free but holds (%d, %d)", s, sl->layer, sl->expert);
        return 0;
    }
    if (sl->state > QN_EXP_SLOT_READY) return qn_fail(-EFAULT, "slot %d: bad state %d", s, sl->state);
    if (sl->layer < 0 || sl->layer >= c->p.n_layers || sl->expert < 0 || sl->expert >= c->p.n_experts)
        return qn_fail(-EFAULT, "slot %d: holds out-of-range (%d, %d)", s, sl->layer, sl->expert);
    if (*tab(c, sl->layer, sl->expert) != s)
        return qn_fail(-EFAULT, "slot %d holds (%d, %d) but the table says slot %d", s, sl->layer, sl->expert,
                       *tab(c, sl->layer, sl->expert));
    *n_pf += sl->pf_pending;
    return 0;
}

int qn_exp_check(const qn_exp_cache *c)
{
    int n_pf = 0, n_free = 0, resident = 0, rc;
    for (int32_t s = 0; s < c->n_slots; s++) {
        if ((rc = check_slot(c, s, &n_pf)) < 0) return rc;
        n_free += c->slots[s].state == QN_EXP_SLOT_FREE;
    }
    if (n_free != c->n_free) return qn_fail(-EFAULT, "%d free slots but the free list has %d", n_free, c->n_free);
    for (int i = 0; i < c->n_free; i++) {
        int32_t s = c->free_stack[i];
        if (s < 0 || s >= c->n_slots || c->slots[s].state != QN_EXP_SLOT_FREE)
            return qn_fail(-EFAULT, "free list entry %d: slot %d is not free", i, s);
    }
    int64_t n_tab = (int64_t)c->p.n_layers * c->p.n_experts;
    for (int64_t i = 0; i < n_tab; i++) {
        int32_t s = c->table[i];
        if (s < -1 || s >= c->n_slots) return qn_fail(-EFAULT, "table entry %lld = %d out of range", (long long)i, s);
        if (s < 0) continue;
        resident++;
        if ((int64_t)c->slots[s].layer * c->p.n_experts + c->slots[s].expert != i)
            return qn_fail(-EFAULT, "table entry %lld -> slot %d, which holds (%d, %d)", (long long)i, s,
                           c->slots[s].layer, c->slots[s].expert);
    }
    if (resident + n_free != c->n_slots)
        return qn_fail(-EFAULT, "%d resident + %d free != %d slots", resident, n_free, c->n_slots);
    if (n_pf != c->pf_held || c->pf_held > c->p.n_prefetch)
        return qn_fail(-EFAULT, "prefetch-held slots: counted %d, recorded %d, allowance %d", n_pf, c->pf_held,
                       c->p.n_prefetch);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Statistics.                                                                                        */

static void stats_add(struct qn_exp_stats *a, const struct qn_exp_stats *b)
{
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;
    for (size_t i = 0; i < sizeof *a / sizeof(uint64_t); i++) x[i] += y[i];
}

void qn_exp_get_stats(const qn_exp_cache *c, int32_t layer, struct qn_exp_stats *out)
{
    memset(out, 0, sizeof *out);
    if (layer >= 0 && layer < c->p.n_layers) *out = c->st[layer];
    else if (layer < 0)
        for (int l = 0; l < c->p.n_layers; l++) stats_add(out, &c->st[l]);
}

void qn_exp_reset_stats(qn_exp_cache *c) { memset(c->st, 0, (size_t)c->p.n_layers * sizeof *c->st); }

double qn_exp_hit_rate(const struct qn_exp_stats *s) { return s->accesses ? (double)s->hits / (double)s->accesses : 0; }
double qn_exp_precision(const struct qn_exp_stats *s)
{
    return s->pf_guessed ? (double)s->pf_correct / (double)s->pf_guessed : 0;
}
double qn_exp_recall(const struct qn_exp_stats *s) { return s->pf_used ? (double)s->pf_correct / (double)s->pf_used : 0; }

/* ------------------------------------------------------------------------------------------------ */
/* Policy: LRU (a doubly linked list over slots, most recent at the head).                            */

struct lru {
    int32_t head, tail, n_fixed;
    int32_t *prev, *next;
    uint8_t *in;
};

static int lru_init(void **state, const struct qn_exp_policy_info *info)
{
    struct lru *l = calloc(1, sizeof *l);
    size_t n = (size_t)info->n_slots;
    if (!l || !(l->prev = malloc(n * sizeof *l->prev)) || !(l->next = malloc(n * sizeof *l->next)) ||
        !(l->in = calloc(n, 1))) {
        if (l) { free(l->prev); free(l->next); free(l); }
        return qn_fail(-ENOMEM, "lru: out of memory");
    }
    l->head = l->tail = -1;
    l->n_fixed = info->n_fixed;
    *state = l;
    return 0;
}

static void lru_fini(void *state)
{
    struct lru *l = state;
    if (!l) return;
    free(l->prev);
    free(l->next);
    free(l->in);
    free(l);
}

static void lru_unlink(struct lru *l, int32_t s)
{
    if (!l->in[s]) return;
    if (l->prev[s] >= 0) l->next[l->prev[s]] = l->next[s];
    else l->head = l->next[s];
    if (l->next[s] >= 0) l->prev[l->next[s]] = l->prev[s];
    else l->tail = l->prev[s];
    l->in[s] = 0;
}

static void lru_touch(void *state, int32_t s, int32_t layer, int32_t expert)
{
    struct lru *l = state;
    lru_unlink(l, s);
    l->prev[s] = -1;
    l->next[s] = l->head;
    if (l->head >= 0) l->prev[l->head] = s;
    l->head = s;
    if (l->tail < 0) l->tail = s;
    l->in[s] = 1;
}

static void lru_remove(void *state, int32_t s) { lru_unlink(state, s); }

static int32_t lru_victim(void *state, const qn_exp_cache *c, qn_exp_evictable_fn evictable)
{
    struct lru *l = state;
    for (int32_t s = l->tail; s >= 0; s = l->prev[s])
        if (s >= l->n_fixed && evictable(c, s)) return s;
    return -1;
}

const struct qn_exp_policy qn_exp_policy_lru = { "lru", lru_init, lru_fini, lru_touch, lru_touch, lru_remove, lru_victim };

/* Policy: pinned hot set. The cache keeps slots [0, n_fixed) for the hot pairs; the rest is LRU. */
static int pinned_init(void **state, const struct qn_exp_policy_info *info)
{
    if (info->n_fixed < 1) return qn_fail(-EINVAL, "policy pinned: no hot set given (qn_exp_params.hot)");
    return lru_init(state, info);
}

const struct qn_exp_policy qn_exp_policy_pinned = { "pinned", pinned_init, lru_fini, lru_touch, lru_touch,
                                                    lru_remove, lru_victim };

/* ------------------------------------------------------------------------------------------------ */
/* Policy: LFU with exponential aging. Each (layer, expert) has a score that grows by `inc` per access;
 * `inc` itself grows by 2^(1/halflife) per access, so an access `halflife` accesses ago weighs half.
 * Scores survive eviction (an expert that was hot comes back with its history). Victim: lowest score,
 * ties broken by least recent use. */

struct lfu {
    int n_slots, n_fixed, n_experts;
    size_t n_keys;
    double inc, growth;
    double *score;        /* [n_layers * n_experts] */
    int64_t *key;         /* [n_slots] (layer * n_experts + expert) or -1 */
    uint64_t *last, tick;
};

static int lfu_init(void **state, const struct qn_exp_policy_info *info)
{
    struct lfu *f = calloc(1, sizeof *f);
    size_t nk = (size_t)info->n_layers * (size_t)info->n_experts, ns = (size_t)info->n_slots;
    if (!f || !(f->score = calloc(nk, sizeof *f->score)) || !(f->key = malloc(ns * sizeof *f->key)) ||
        !(f->last = calloc(ns, sizeof *f->last))) {
        if (f) { free(f->score); free(f->key); free(f); }
        return qn_fail(-ENOMEM, "lfu: out of memory");
    }
    double hl = info->lfu_halflife > 0 ? info->lfu_halflife : 16.0 * info->n_slots;
    f->n_slots = info->n_slots;
    f->n_fixed = info->n_fixed;
    f->n_experts = info->n_experts;
    f->inc = 1.0;
    f->growth = pow(2.0, 1.0 / hl);
    for (size_t i = 0; i < ns; i++) f->key[i] = -1;
    f->n_keys = nk;
    *state = f;
    return 0;
}

static void lfu_fini(void *state)
{
    struct lfu *f = state;
    if (!f) return;
    free(f->score);
    free(f->key);
    free(f->last);
    free(f);
}

static void lfu_access(void *state, int32_t s, int32_t layer, int32_t expert)
{
    struct lfu *f = state;
    int64_t k = (int64_t)layer * f->n_experts + expert;
    f->key[s] = k;
    f->last[s] = ++f->tick;
    f->score[k] += f->inc;
    f->inc *= f->growth;
    if (f->inc > 1e200) {            /* rescale everything; ratios (and so decisions) are unchanged */
        for (size_t i = 0; i < f->n_keys; i++) f->score[i] /= f->inc;
        f->inc = 1.0;
    }
}

static void lfu_remove(void *state, int32_t s) { ((struct lfu *)state)->key[s] = -1; }

static int32_t lfu_victim(void *state, const qn_exp_cache *c, qn_exp_evictable_fn evictable)
{
    struct lfu *f = state;
    int32_t best = -1;
    for (int32_t s = f->n_fixed; s < f->n_slots; s++) {
        if (f->key[s] < 0 || !evictable(c, s)) continue;
        if (best < 0 || f->score[f->key[s]] < f->score[f->key[best]] ||
            (f->score[f->key[s]] == f->score[f->key[best]] && f->last[s] < f->last[best]))
            best = s;
    }
    return best;
}

const struct qn_exp_policy qn_exp_policy_lfu = { "lfu", lfu_init, lfu_fini, lfu_access, lfu_access, lfu_remove, lfu_victim };

const struct qn_exp_policy *qn_exp_policy_by_name(const char *name)
{
    const struct qn_exp_policy *all[] = { &qn_exp_policy_lru, &qn_exp_policy_lfu, &qn_exp_policy_pinned };
    for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
        if (!strcmp(all[i]->name, name)) return all[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Traces.                                                                                            */

void qn_exp_trace_free(struct qn_exp_trace *t)
{
    free(t->layer);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* One token's ids for one layer: k distinct draws from the cumulative weights `cdf` over ranks. */
static void synth_draw(qn_rng *r, const double *cdf, const int32_t *perm, int n, int k, int32_t *out)
{
    for (int i = 0; i < k; i++) {
        int32_t id;
        for (int tries = 0;; tries++) {
            double u = qn_rng_uniform(r) * cdf[n - 1];
            int lo = 0, hi = n - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (cdf[mid] > u) hi = mid;
                else lo = mid + 1;
            }
            id = tries < 1000 ? perm[lo] : perm[(lo + tries) % n];
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= out[j] == id;
            if (!dup) break;
        }
        out[i] = id;
    }
}

int qn_exp_trace_synth(struct qn_exp_trace *t, int n_layers, int n_experts, int top_k, int n_tokens,
                       double zipf_s, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    if (n_layers < 1 || n_experts < 1 || top_k < 1 || top_k > n_experts || n_tokens < 1 || zipf_s < 0)
        return qn_fail(-EINVAL, "trace synth: bad shape (%d layers, %d experts, k %d, %d tokens, s %g)", n_layers,
                       n_experts, top_k, n_tokens, zipf_s);
    int64_t steps = (int64_t)n_tokens * n_layers;
    double *cdf = malloc((size_t)n_experts * sizeof *cdf);
    int32_t *perm = malloc((size_t)n_layers * (size_t)n_experts * sizeof *perm);
    t->layer = malloc((size_t)steps * sizeof *t->layer);
    t->ids = malloc((size_t)steps * (size_t)top_k * sizeof *t->ids);
    if (!cdf || !perm || !t->layer || !t->ids) {
        free(cdf);
        free(perm);
        qn_exp_trace_free(t);
        return qn_fail(-ENOMEM, "trace synth: out of memory for %lld steps", (long long)steps);
    }
    qn_rng r;
    qn_rng_seed(&r, seed);
    for (int i = 0; i < n_experts; i++) cdf[i] = (i ? cdf[i - 1] : 0) + pow(i + 1.0, -zipf_s);
    for (int l = 0; l < n_layers; l++) {
        int32_t *p = &perm[(size_t)l * n_experts];
        for (int i = 0; i < n_experts; i++) p[i] = i;
        for (int i = n_experts - 1; i > 0; i--) {
            int j = (int)(qn_rng_u64(&r) % (uint64_t)(i + 1));
            int32_t x = p[i];
            p[i] = p[j];
            p[j] = x;
        }
    }
    *t = (struct qn_exp_trace){ n_layers, n_experts, top_k, steps, t->layer, t->ids };
    for (int64_t s = 0; s < steps; s++) {
        int l = (int)(s % n_layers);
        t->layer[s] = l;
        synth_draw(&r, cdf, &perm[(size_t)l * n_experts], n_experts, top_k, &t->ids[s * top_k]);
    }
    free(cdf);
    free(perm);
    return 0;
}

struct hot_count { int64_t count, key; };

static int hot_cmp(const void *a, const void *b)
{
    const struct hot_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

int qn_exp_hot_from_trace(const struct qn_exp_trace *t, int m, int32_t *pairs)
{
    int64_t n = (int64_t)t->n_layers * t->n_experts;
    struct hot_count *h = calloc((size_t)n, sizeof *h);
    if (!h) return qn_fail(-ENOMEM, "hot set: out of memory");
    for (int64_t i = 0; i < n; i++) h[i].key = i;
    for (int64_t s = 0; s < t->n_steps; s++)
        for (int j = 0; j < t->top_k; j++) h[(int64_t)t->layer[s] * t->n_experts + t->ids[s * t->top_k + j]].count++;
    qsort(h, (size_t)n, sizeof *h, hot_cmp);
    int w = 0;
    for (; w < m && w < n && h[w].count > 0; w++) {
        pairs[2 * w] = (int32_t)(h[w].key / t->n_experts);
        pairs[2 * w + 1] = (int32_t)(h[w].key % t->n_experts);
    }
    free(h);
    return w;
}

int qn_exp_replay(qn_exp_cache *c, const struct qn_exp_trace *t, const struct qn_exp_replay_opts *o)
{
    struct qn_exp_replay_opts def = { 0 };
    if (!o) o = &def;
    if (t->n_layers != c->p.n_layers || t->n_experts != c->p.n_experts || t->top_k > QN_EXP_MAX_K)
        return qn_fail(-EINVAL, "replay: trace shape (%d layers, %d experts) does not match the cache (%d, %d)",
                       t->n_layers, t->n_experts, c->p.n_layers, c->p.n_experts);
    struct qn_exp_fill hot[QN_EXP_MAX_K];
    for (int n; (n = qn_exp_hot_fills(c, hot, QN_EXP_MAX_K)) > 0;)
        for (int i = 0; i < n; i++) qn_exp_fill_done(c, hot[i].slot);
    uint64_t completed = 0;
    struct qn_exp_result res;
    for (int64_t s = 0; s < t->n_steps; s++) {
        uint64_t use = (uint64_t)s + 1;
        if (use > 1 + (uint64_t)o->lag && use - 1 - (uint64_t)o->lag > completed) completed = use - 1 - (uint64_t)o->lag;
        int rc;
        while ((rc = qn_exp_lookup(c, t->layer[s], &t->ids[s * t->top_k], t->top_k, use, completed, &res)) == -EAGAIN)
            completed = res.wait_for;
        if (rc < 0) return qn_fail_ctx(rc, "replay step %lld", (long long)s);
        for (int i = 0; i < res.n_fill; i++) qn_exp_fill_done(c, res.fill[i].slot);
        if (o->check && (rc = qn_exp_check(c)) < 0) return qn_fail_ctx(rc, "replay step %lld", (long long)s);
        if (s + 1 == o->warmup_steps) qn_exp_reset_stats(c);
    }
    return 0;
}
