/* bench_forward.c — time the Vulkan forward pass on a checkpoint: load, prompt processing (prefill) and greedy
 * decoding, with GPU time per op family (--profile) and the bandwidth decode reaches on the bytes it must read.
 *
 * usage: bench_forward MODEL [--prompt N] [--decode M] [--chunk C] [--reps R] [--device SEL] [--profile]
 *                      [--mm WG,BM,BN,BK,TM,TN] [--small-t N] [--expert-cache MIB] [--io MODE] [--prefetch P]
 * --expert-cache MIB below the experts' size streams experts from the model files (--io auto|direct|buffered,
 * --prefetch slots); the expert-cache statistics are printed after the run.
 * --mm picks the prefill matmul tile (spec constants), --small-t the largest call that uses matvec.
 * The prompt is N pseudo-random token ids (fixed seed); the session is reset between repetitions and the best
 * repetition is reported (the first one also pays pipeline compilation). Prints one summary line per phase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qn_err.h"
#include "qn_log.h"
#include "qn_rng.h"
#include "session.h"
#include "stream.h"

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, ": %s\n", qn_errmsg()); exit(1); } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Weight bytes one decode step reads: every dense matrix once (the embedding: one row), the top-k experts of
 * every layer. */
static double decode_bytes(const qn_model *m)
{
    const qn_config *c = &m->c;
    double b = (double)m->dense_bytes - (double)m->embed.bytes + (double)m->embed.bytes / m->embed.rows;
    if (c->tie_word_embeddings) b += (double)m->embed.bytes;
    return b + (double)c->num_layers * c->top_k * (double)m->slot_bytes;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *device = NULL;
    int prompt = 512, decode = 64, reps = 3, prefetch = 0;
    double cache_mib = 0;
    enum qn_io_mode io = QN_IO_AUTO;
    struct qn_session_params sp;
    qn_session_default_params(&sp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--prompt") && v) prompt = atoi(argv[++i]);
        else if (!strcmp(a, "--decode") && v) decode = atoi(argv[++i]);
        else if (!strcmp(a, "--chunk") && v) sp.chunk = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--device") && v) device = argv[++i];
        else if (!strcmp(a, "--profile")) sp.profile = true;
        else if (!strcmp(a, "--mm") && v) { /* matmul tile: WG,BM,BN,BK,TM,TN */
            if (sscanf(argv[++i], "%u,%u,%u,%u,%u,%u", &sp.tune.matmul[0], &sp.tune.matmul[1], &sp.tune.matmul[2],
                       &sp.tune.matmul[3], &sp.tune.matmul[4], &sp.tune.matmul[5]) != 6) {
                fprintf(stderr, "--mm WG,BM,BN,BK,TM,TN (e.g. 256,128,128,16,8,8)\n");
                return 2;
            }
        } else if (!strcmp(a, "--small-t") && v) sp.tune.small_t = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--expert-cache") && v) cache_mib = atof(argv[++i]);
        else if (!strcmp(a, "--prefetch") && v) prefetch = atoi(argv[++i]);
        else if (!strcmp(a, "--io") && v) {
            if (qn_io_mode_parse(argv[++i], &io)) { fprintf(stderr, "--io auto|direct|buffered\n"); return 2; }
        }
        else if (a[0] != '-' && !dir) dir = a;
        else {
            fprintf(stderr, "usage: %s MODEL_DIR [--prompt N] [--decode M] [--chunk C] [--reps R] [--device SEL] "
                            "[--profile] [--mm WG,BM,BN,BK,TM,TN] [--small-t N] [--expert-cache MIB] [--io MODE] "
                            "[--prefetch P]\n", argv[0]);
            return 2;
        }
    }
    if (!dir || prompt < 1 || decode < 0 || reps < 1) {
        fprintf(stderr, "%s: need a model folder, --prompt >= 1, --decode >= 0, --reps >= 1\n", argv[0]);
        return 2;
    }
    qn_log_set(NULL, NULL, QN_LOG_WARN);
    struct qn_vk_params vp;
    qn_vk_default_params(&vp);
    vp.device = device;
    qn_vk *v;
    int rc = qn_vk_open(&v, &vp);
    if (rc == QN_E_SKIP || rc == QN_E_NODEV) {
        fprintf(stderr, "\n*** SKIP bench_forward: %s ***\n\n", qn_errmsg());
        return 77;
    }
    if (rc) DIE("opening the Vulkan device");
    const struct qn_caps *caps = qn_vk_caps(v);
    qn_model *m;
    struct qn_model_params mp;
    qn_model_default_params(&mp);
    mp.expert_cache = (uint64_t)(cache_mib * 1048576.0);
    mp.io_mode = (int)io;
    mp.prefetch = prefetch;
    double t0 = now_s();
    if (qn_model_load(&m, v, dir, &mp)) DIE("loading %s", dir);
    double tl = now_s() - t0;
    const qn_config *c = &m->c;
    printf("device '%s' (%s), validation %s\n", caps->name, caps->driver_info, qn_vk_validating(v) ? "ON" : "off");
    printf("model %s: %d layers, hidden %d, %d experts top-%d, vocab %d; %.2f GiB dense (%s), %u experts x %.2f MiB "
           "(%s); loaded in %.1f s (%.2f GB/s)\n", dir, c->num_layers, c->hidden_size, c->num_experts, c->top_k,
           c->vocab_size, m->dense_bytes / 1073741824.0, qn_dtype_name(m->embed.dtype), m->n_slots,
           m->slot_bytes / 1048576.0, qn_dtype_name(m->exp_dtype), tl, (m->dense_bytes + m->expert_bytes) / tl / 1e9);
    if ((uint32_t)prompt + (uint32_t)decode > sp.ctx) sp.ctx = (uint32_t)(prompt + decode);
    qn_session *s;
    if (qn_session_new(&s, m, &sp)) DIE("session");
    int32_t *ids = malloc(sizeof *ids * (size_t)prompt);
    qn_rng rng;
    qn_rng_seed(&rng, 1234);
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)(qn_rng_u64(&rng) % (uint64_t)c->vocab_size);
    double best_p = 1e30, best_d = 1e30;
    int32_t first = -1;
    for (int r = 0; r < reps; r++) {
        if (qn_session_reset(s)) DIE("reset");
        int32_t next;
        double a = now_s();
        if (qn_session_greedy(s, ids, prompt, &next, NULL)) DIE("prefill of %d tokens", prompt);
        double b = now_s();
        if (r == 0) first = next;
        else if (next != first) printf("NOTE: repetition %d chose %d after the prompt, the first chose %d\n", r, next, first);
        for (int i = 0; i < decode; i++)
            if (qn_session_greedy(s, &next, 1, &next, NULL)) DIE("decode step %d", i);
        double d = now_s();
        if (b - a < best_p) best_p = b - a;
        if (decode && d - b < best_d) best_d = d - b;
        printf("rep %d: prefill %d tokens %.3f s (%.0f tok/s), decode %d tokens %.3f s (%.1f tok/s)\n", r, prompt,
               b - a, prompt / (b - a), decode, d - b, decode ? decode / (d - b) : 0.0);
    }
    printf("best: prefill %.0f tok/s (chunk %u, matmul tile %s); ", prompt / best_p, sp.chunk ? sp.chunk : 512,
           sp.tune.matmul[0] ? "from --mm" : "default");
    if (decode) {
        double ms = best_d / decode * 1e3, bytes = decode_bytes(m);
        printf("decode %.2f ms/token = %.1f tok/s, %.2f GB of weights per token -> %.0f GB/s\n", ms, 1e3 / ms,
               bytes / 1e9, bytes / (ms * 1e-3) / 1e9);
    } else {
        printf("no decode\n");
    }
    qn_session_profile(s, stdout);
    qn_session_stats(s, stdout);
    qn_session_free(&s);
    qn_model_free(&m);
    free(ids);
    qn_vk_close(&v);
    return 0;
}
