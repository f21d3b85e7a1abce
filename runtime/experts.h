/* experts.h — the routed-expert slot cache: pure host logic, no Vulkan and no IO.
 *
 * A pool of n_slots expert slots (device memory owned by the Vulkan side) holds some of the
 * n_layers x n_experts routed experts. This module decides which (layer, expert) lives in which slot:
 *   - residency table (layer, expert) -> slot, a flat int32 array [n_layers][n_experts] (-1 = absent)
 *     that can be uploaded as is as the device copy (per-layer dirty flags say what changed), and the
 *     reverse map slot -> (layer, expert);
 *   - a lookup that takes one layer's top-k ids, returns the slot of each and assigns slots for the
 *     misses (the reads to issue);
 *   - eviction through a replacement policy (vtable: LRU, LFU with aging, pinned hot set + LRU) that
 *     NEVER evicts a slot still used by an in-flight submission: every use pins the slot with a stamp
 *     (the timeline-semaphore value of the submission that reads it); a slot is evictable only when
 *     the caller's completed value >= its stamp, and it is not being filled, and it is not in the hot set;
 *   - prefetch bookkeeping (precision/recall of guesses) and statistics per layer;
 *   - a trace replayer and a synthetic trace generator for comparing policies.
 * The protocol that drives it is in docs/streaming.md. Not thread-safe: one caller thread. */
#ifndef QN_EXPERTS_H
#define QN_EXPERTS_H

#include <stdbool.h>
#include <stdint.h>

#define QN_EXP_MAX_K 64   /* most ids one lookup/prefetch call takes */

/* ---- sizing ---------------------------------------------------------------------------------- */

/* The fewest slots a streaming cache can run with: one layer's top-k (pinned while its dispatch runs)
 * plus the prefetch slots (pinned by guesses for the next layer) plus the pinned hot set. */
int qn_exp_min_slots(int top_k, int n_prefetch, int n_hot);
/* Slots that fit a byte budget: floor(budget / expert_bytes), capped at n_total (all experts resident).
 * Fails with -ENOSPC and a message naming both numbers when the budget holds fewer than the minimum. */
int qn_exp_slots_for_budget(uint64_t budget_bytes, uint64_t expert_bytes, int top_k, int n_prefetch, int n_hot,
                            int64_t n_total, int *n_slots);

/* ---- policies ---------------------------------------------------------------------------------- */

typedef struct qn_exp_cache qn_exp_cache;

struct qn_exp_policy_info {
    int n_slots, n_layers, n_experts;
    int n_fixed;            /* slots [0, n_fixed) hold the hot set; never victims */
    double lfu_halflife;    /* LFU: accesses after which a count weighs half (0 = default 16 x n_slots) */
};

/* Evictability as the cache sees it right now: filled, not hot, stamp <= completed, and not one of the
 * ids of the lookup/prefetch call in progress. */
typedef bool (*qn_exp_evictable_fn)(const qn_exp_cache *c, int32_t slot);

/* One replacement policy. The cache tells it about accesses and inserts and asks it for a victim
 * among the evictable occupied slots (free slots are used first without asking). */
struct qn_exp_policy {
    const char *name;
    int (*init)(void **state, const struct qn_exp_policy_info *info);
    void (*fini)(void *state);
    void (*on_access)(void *state, int32_t slot, int32_t layer, int32_t expert);   /* a hit */
    void (*on_insert)(void *state, int32_t slot, int32_t layer, int32_t expert);   /* a miss filled it */
    void (*on_remove)(void *state, int32_t slot);                                  /* evicted / failed */
    /* An occupied slot with evictable(c, slot) true, or -1 if there is none. */
    int32_t (*choose_victim)(void *state, const qn_exp_cache *c, qn_exp_evictable_fn evictable);
};

extern const struct qn_exp_policy qn_exp_policy_lru;     /* least recently used */
extern const struct qn_exp_policy qn_exp_policy_lfu;     /* least frequently used, exponential aging,
                                                            counts kept per (layer, expert) across evictions */
extern const struct qn_exp_policy qn_exp_policy_pinned;  /* hot set in the first slots, LRU for the rest */
/* "lru" | "lfu" | "pinned" -> policy, or NULL. */
const struct qn_exp_policy *qn_exp_policy_by_name(const char *name);

/* ---- the cache ----------------------------------------------------------------------------------- */

struct qn_exp_params {
    int n_layers, n_experts, top_k;
    int n_prefetch;                    /* slots that prefetch guesses may hold at once (0 = no prefetch) */
    uint64_t expert_bytes;             /* bytes of one expert (gate + up + down), for stats */
    int n_slots;                       /* from qn_exp_slots_for_budget */
    const struct qn_exp_policy *policy;/* NULL = LRU */
    const int32_t *hot;                /* n_hot (layer, expert) pairs placed in slots [0, n_hot) */
    int n_hot;
    double lfu_halflife;               /* see qn_exp_policy_info */
};

int qn_exp_create(qn_exp_cache **out, const struct qn_exp_params *p);
void qn_exp_destroy(qn_exp_cache **c);

enum qn_exp_kind {
    QN_EXP_HIT = 0,      /* resident and filled: use the slot */
    QN_EXP_PENDING = 1,  /* resident, its fill (e.g. a prefetch read) is still in flight: wait for it */
    QN_EXP_MISS = 2,     /* a slot was assigned: issue the read in fill[] */
    QN_EXP_SKIP = 3,     /* prefetch only: absent and no slot given (allowance used up or none evictable) */
};

struct qn_exp_fill { int32_t layer, expert, slot; };

struct qn_exp_result {
    int k;
    int32_t slot[QN_EXP_MAX_K];        /* per input id */
    uint8_t kind[QN_EXP_MAX_K];        /* enum qn_exp_kind per input id */
    int n_fill;                        /* reads to issue, in input order */
    struct qn_exp_fill fill[QN_EXP_MAX_K];
    int n_hit, n_pending;
    uint64_t wait_for;                 /* on -EAGAIN: wait until completed >= this, then retry */
};

/* One layer's routed ids (distinct, k <= QN_EXP_MAX_K). `use` is the timeline value of the submission
 * that will read the slots; `completed` the value the caller knows has completed. All k slots get
 * stamp >= use. Misses take free slots first, then the policy's victims.
 * Returns 0; -EAGAIN (nothing changed) when too few slots are evictable yet, with out->wait_for set
 * to the completed value that frees enough of them; -ENOSPC when even that would not (fills in flight
 * hold them: finish those first); -EINVAL on bad ids. */
int qn_exp_lookup(qn_exp_cache *c, int32_t layer, const int32_t *ids, int k, uint64_t use, uint64_t completed,
                  struct qn_exp_result *out);
/* Guessed ids for a layer that is not routed yet. Best effort: resident guesses are pinned with `use`,
 * absent ones get slots while the prefetch allowance (n_prefetch slots held by unconsumed guesses) and
 * evictable slots last; never -EAGAIN. Records the guess for precision/recall at that layer's lookup
 * (a later guess for the same layer replaces an unconsumed one). */
int qn_exp_prefetch(qn_exp_cache *c, int32_t layer, const int32_t *ids, int n, uint64_t use, uint64_t completed,
                    struct qn_exp_result *out);
/* The read + copy for a slot from fill[] finished (it becomes a HIT) or failed (the slot is freed). */
int qn_exp_fill_done(qn_exp_cache *c, int32_t slot);
int qn_exp_fill_failed(qn_exp_cache *c, int32_t slot);
/* The hot set's initial fills (slots [0, n_hot), state filling until qn_exp_fill_done). */
int qn_exp_hot_fills(const qn_exp_cache *c, struct qn_exp_fill *out, int max);
/* The caller waited this long for reads before it could release layer `layer`'s dispatch. */
void qn_exp_note_stall(qn_exp_cache *c, int32_t layer, uint64_t ns);

/* Residency. The table is [n_layers][n_experts] int32 (slot or -1), the device copy's source. */
const int32_t *qn_exp_table(const qn_exp_cache *c);
bool qn_exp_table_dirty(const qn_exp_cache *c, int32_t layer);   /* changed since qn_exp_table_clean */
void qn_exp_table_clean(qn_exp_cache *c, int32_t layer);         /* -1: every layer */
int qn_exp_n_slots(const qn_exp_cache *c);

enum qn_exp_slot_state { QN_EXP_SLOT_FREE = 0, QN_EXP_SLOT_FILLING = 1, QN_EXP_SLOT_READY = 2 };
struct qn_exp_slot_info {
    int32_t layer, expert;     /* -1 when free */
    uint64_t stamp;            /* highest use value that pinned it */
    uint8_t state;             /* enum qn_exp_slot_state */
    bool fixed, prefetched, used;
};
int qn_exp_slot_get(const qn_exp_cache *c, int32_t slot, struct qn_exp_slot_info *out);
bool qn_exp_slot_evictable(const qn_exp_cache *c, int32_t slot);
/* Check every invariant (table <-> reverse map, free list, counters). 0 or -EFAULT with a message. */
int qn_exp_check(const qn_exp_cache *c);

/* ---- statistics ---------------------------------------------------------------------------------- */

struct qn_exp_stats {
    uint64_t lookups;              /* qn_exp_lookup calls that succeeded */
    uint64_t accesses;             /* ids looked up (= lookups x k) */
    uint64_t hits, misses;         /* hits include pending (resident, fill in flight) */
    uint64_t pending;
    uint64_t fills, pf_fills;      /* slots assigned by lookups / by prefetch (less the fills that failed) */
    uint64_t bytes_read;           /* (fills + pf_fills) x expert_bytes */
    uint64_t evictions;
    uint64_t pf_fills_used, pf_fills_wasted;  /* prefetched slots later hit / evicted unused */
    uint64_t pf_guessed, pf_correct, pf_used; /* see qn_exp_precision / qn_exp_recall */
    uint64_t waits;                /* lookups refused with -EAGAIN */
    uint64_t stall_ns;             /* from qn_exp_note_stall */
};
/* layer -1: the sum over layers. */
void qn_exp_get_stats(const qn_exp_cache *c, int32_t layer, struct qn_exp_stats *out);
void qn_exp_reset_stats(qn_exp_cache *c);
double qn_exp_hit_rate(const struct qn_exp_stats *s);   /* hits / accesses */
double qn_exp_precision(const struct qn_exp_stats *s);  /* guessed-and-used / guessed */
double qn_exp_recall(const struct qn_exp_stats *s);     /* guessed-and-used / used (lookups with a guess) */

/* ---- traces ---------------------------------------------------------------------------------- */

/* A routing trace: n_steps steps, step i routes layer[i] to ids[i*top_k .. +top_k). */
struct qn_exp_trace {
    int n_layers, n_experts, top_k;
    int64_t n_steps;
    int32_t *layer, *ids;
};
/* Synthetic decode trace: n_tokens tokens x n_layers layers in order; per layer the experts have a
 * random popularity order and ids are drawn without replacement with P(rank r) ~ 1/(r+1)^zipf_s
 * (zipf_s = 0: uniform). */
int qn_exp_trace_synth(struct qn_exp_trace *t, int n_layers, int n_experts, int top_k, int n_tokens,
                       double zipf_s, uint64_t seed);
void qn_exp_trace_free(struct qn_exp_trace *t);
/* The m most frequent (layer, expert) pairs of a trace (ties: lower layer, then lower id) into
 * pairs[2*m]; returns how many were written (<= m). */
int qn_exp_hot_from_trace(const struct qn_exp_trace *t, int m, int32_t *pairs);

struct qn_exp_replay_opts {
    int64_t warmup_steps;   /* stats are reset after this many steps */
    int lag;                /* completed = use - 1 - lag: earlier submissions still in flight */
    bool check;             /* run qn_exp_check after every step */
};
/* Replay a trace through the cache (fills complete at once; -EAGAIN advances completed to wait_for).
 * Stats accumulate in the cache (qn_exp_get_stats). Returns 0 or the first error. */
int qn_exp_replay(qn_exp_cache *c, const struct qn_exp_trace *t, const struct qn_exp_replay_opts *o);

#endif
