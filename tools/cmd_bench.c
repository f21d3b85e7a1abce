/* cmd_bench.c — `qnext bench`: time the Vulkan forward pass on a checkpoint. Load, prompt processing (prefill)
 * and greedy decoding of pseudo-random token ids (fixed seed), best of --reps repetitions (the first one also
 * pays pipeline compilation), the weight bytes one decoded token reads and the bandwidth that implies. When the
 * experts stream (--expert-cache below their bytes): the decode phase's hit rate, bytes read per token, IO GB/s,
 * stall per token, prefetch precision/recall, and the IO ceiling: the read speed of the largest model file with
 * the same --io mode (random 8 MiB reads, up to 1 GiB) divided by the bytes read per decoded token, and the staged
 * path's second limit, host -> device copies on the transfer queue (h2d_copy_gb_s). --json prints
 * one JSON object instead of the text summary (the per-repetition lines then go to stderr). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "qn_time.h"
#include "board.h"
#include "cli.h"
#include "model_stream.h"
#include "qn_err.h"
#include "qn_rng.h"
#include "quant.h"
#include "session.h"
#include "stream.h"
#include "vk_stack.h"

int qn_cmd_bench(int argc, char **argv);

enum { OPT_PROMPT = QN_OPT_FIRST_FREE, OPT_DECODE, OPT_REPS, OPT_CHUNK, OPT_JSON, OPT_MM, OPT_SMALL_T };

static const char help[] =
    "usage: qnext bench -m MODEL [--prompt N] [--decode M] [--reps R] [--chunk C] [--json] [options]\n\n"
    "Times the Vulkan forward pass: load, prefill of N pseudo-random token ids, then M greedy decode steps,\n"
    "best of R repetitions (the first also pays pipeline compilation). Prints prefill and decode tok/s, the\n"
    "weight bytes per decoded token and the GB/s that implies; when the experts stream (--expert-cache below\n"
    "their size) also the decode hit rate, bytes read per token, IO GB/s, stall per token, prefetch\n"
    "precision/recall and the IO ceiling (the model files' read speed with the same --io mode divided by the\n"
    "bytes read per token) next to the measured decode speed.\n\n"
    "      --prompt N         prompt tokens (default 512)\n"
    "      --decode M         decoded tokens per repetition (default 64; 0 = prefill only)\n"
    "      --reps R           repetitions (default 3)\n"
    "      --chunk C          prompt tokens per submission (default: the session's, 512 .. 4096 by free memory)\n"
    "      --json             one JSON object on standard output instead of the text summary\n"
    "      --mm WG,BM,BN,BK,TM,TN  prefill matmul tile (spec constants), e.g. 256,128,128,16,8,8\n"
    "      --small-t N        largest call that uses matvec / per-token MoE\n"
    QN_CLI_COMMON_HELP
    "  -h, --help             this text\n";

struct bench_opts {
    struct qn_cli_common c;
    long prompt, decode, reps, chunk;
    bool json;
    struct qn_fwd_tune tune;
};

/* Decode-phase streaming counters (summed over repetitions). */
struct bench_stream {
    struct qn_exp_stats es;
    uint64_t io_bytes, io_busy_ns;
    struct qn_mst_times t;            /* the route wait split, GPU busy, copies (model_stream.h) */
};

struct bench_result {
    double load_s, best_prefill_s, best_decode_s;
    struct bench_stream dec;          /* decode phases only */
    uint64_t dec_tokens;
    /* IO ceiling */
    char ceil_file[PATH_MAX];
    char ceil_engine[64];
    double ceil_gbps;
    uint64_t ceil_bytes;
    double h2d_gbps;                  /* host-visible -> device copies on the transfer queue (staged streaming) */
    uint32_t chunk;                   /* prompt tokens per call the session used */
    double bar_gbps;                  /* host memory -> BAR mapping by bar_threads threads (BAR streaming), 0: none */
    int bar_threads;
};

static int parse_mm(const char *s, uint32_t mm[6])
{
    if (sscanf(s, "%u,%u,%u,%u,%u,%u", &mm[0], &mm[1], &mm[2], &mm[3], &mm[4], &mm[5]) != 6) {
        fprintf(stderr, "qnext bench: --mm WG,BM,BN,BK,TM,TN (e.g. 256,128,128,16,8,8), got '%s'\n", s);
        return -1;
    }
    return 0;
}

/* Returns 0 to run, 1 after --help, <0 on bad arguments (message printed). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        QN_CLI_COMMON_LONGOPTS,
        { "prompt", required_argument, 0, OPT_PROMPT }, { "decode", required_argument, 0, OPT_DECODE },
        { "reps", required_argument, 0, OPT_REPS }, { "chunk", required_argument, 0, OPT_CHUNK },
        { "json", no_argument, 0, OPT_JSON }, { "mm", required_argument, 0, OPT_MM },
        { "small-t", required_argument, 0, OPT_SMALL_T }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    long st;
    int opt, bad = 0;
    optind = 1;
    while (!bad && (opt = getopt_long(argc, argv, "m:vh", longopts, NULL)) != -1) {
        int r = qn_cli_common_opt(&o->c, opt, optarg);
        if (r) { bad = r < 0; continue; }
        switch (opt) {
        case OPT_PROMPT: bad = qn_cli_int("bench", "--prompt", optarg, 1, 1 << 20, &o->prompt) < 0; break;
        case OPT_DECODE: bad = qn_cli_int("bench", "--decode", optarg, 0, 1 << 20, &o->decode) < 0; break;
        case OPT_REPS: bad = qn_cli_int("bench", "--reps", optarg, 1, 1000, &o->reps) < 0; break;
        case OPT_CHUNK: bad = qn_cli_int("bench", "--chunk", optarg, 1, 1 << 16, &o->chunk) < 0; break;
        case OPT_JSON: o->json = true; break;
        case OPT_MM: bad = parse_mm(optarg, o->tune.matmul) < 0; break;
        case OPT_SMALL_T:
            bad = qn_cli_int("bench", "--small-t", optarg, 1, 1 << 16, &st) < 0;
            o->tune.small_t = (uint32_t)st;
            break;
        case 'h': fputs(help, stdout); return 1;
        default: return -qn_cli_usage_error("bench");
        }
    }
    if (bad) return -2;
    if (optind < argc) {
        fprintf(stderr, "qnext bench: unexpected argument '%s'\n", argv[optind]);
        return -qn_cli_usage_error("bench");
    }
    if (!o->c.model) {
        fprintf(stderr, "qnext bench: which model? (-m PATH)\n");
        return -qn_cli_usage_error("bench");
    }
    if (o->c.backend != QN_BACKEND_VULKAN) {
        fprintf(stderr, "qnext bench: times the Vulkan forward pass only (--backend vulkan)\n");
        return -2;
    }
    return 0;
}

/* Device (--device), board profile (--board: memory reserve, kernel tuning), the model and one session. */
static int open_all(const struct bench_opts *o, struct qn_vk_stack *st)
{
    struct qn_session_params sp;
    qn_session_default_params(&sp);
    sp.tune = o->tune;
    sp.chunk = (uint32_t)o->chunk;
    if ((uint64_t)o->prompt + (uint64_t)o->decode > (sp.ctx ? sp.ctx : 4096)) sp.ctx = (uint32_t)(o->prompt + o->decode);
    return qn_vk_stack_open(st, &o->c, sp);
}

/* The largest weights file of the model: the path itself (a .gguf), else the largest model*.safetensors
 * (any *.safetensors when none is named model*) in the folder. */
static int largest_file(const char *path, char *out, size_t cap)
{
    struct stat sb;
    if (stat(path, &sb)) return qn_fail(-errno, "%s: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode)) { snprintf(out, cap, "%s", path); return 0; }
    DIR *d = opendir(path);
    if (!d) return qn_fail(-errno, "%s: %s", path, strerror(errno));
    off_t best = -1;
    int best_named = -1;
    char p[PATH_MAX];
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        int named = !strncmp(e->d_name, "model", 5);
        if (stat(p, &sb) || named < best_named || (named == best_named && sb.st_size <= best)) continue;
        best = sb.st_size;
        best_named = named;
        snprintf(out, cap, "%s", p);
    }
    closedir(d);
    return best < 0 ? qn_fail(-ENOENT, "%s: no .safetensors file to measure the read speed of", path) : 0;
}

enum { CEIL_REQ = 8u << 20, CEIL_QD = 4 };

/* Random-offset reads of CEIL_REQ bytes (4 KiB aligned; the whole file when smaller), CEIL_QD in flight, up to
 * 1 GiB (at least 16 requests): *gbps = bytes / wall time. */
static int ceil_reads(qn_io *io, int f, uint64_t fsize, uint8_t *buf, double *gbps, uint64_t *total)
{
    uint64_t len = fsize < CEIL_REQ ? fsize : CEIL_REQ;
    int n = (int)((1ull << 30) / CEIL_REQ), sub = 0, done = 0, rc = 0;
    if (fsize < (1ull << 30) && fsize / len < (uint64_t)n) n = (int)(fsize / len) < 16 ? 16 : (int)(fsize / len);
    qn_rng rng;
    qn_rng_seed(&rng, 99);
    struct qn_io_cqe cqe[CEIL_QD];
    double t0 = qn_now_s();
    while (!rc && done < n) {
        while (sub < n && sub - done < CEIL_QD) {
            uint64_t off = (qn_rng_u64(&rng) % (fsize - len + 1)) & ~4095ull;
            struct qn_io_req r = { .file = f, .offset = off, .length = len,
                                   .dst = buf + (size_t)(sub % CEIL_QD) * CEIL_REQ, .tag = (uint64_t)sub };
            if ((rc = qn_io_submit(io, &r, 1))) break;
            sub++;
        }
        int k = rc ? 0 : qn_io_wait(io, cqe, CEIL_QD, 1, -1);
        if (k < 0) rc = k;
        for (int i = 0; !rc && i < k; i++, done++)
            if (cqe[i].status) rc = qn_fail(cqe[i].status, "IO ceiling read: %s", cqe[i].msg);
    }
    double t = qn_now_s() - t0;
    *total = (uint64_t)done * len;
    *gbps = t > 0 ? (double)*total / t / 1e9 : 0;
    return rc;
}

/* The model files' read speed with the --io mode the model streams with. */
static int io_ceiling(const struct bench_opts *o, struct bench_result *r)
{
    int rc = largest_file(o->c.model, r->ceil_file, sizeof r->ceil_file);
    if (rc) return rc;
    struct qn_io_params p;
    qn_io_default_params(&p);
    if (o->c.io && (rc = qn_io_mode_parse(o->c.io, &p.mode))) return rc;
    p.no_env_faults = true;
    qn_io *io = NULL;
    uint8_t *buf = aligned_alloc(4096, (size_t)CEIL_QD * CEIL_REQ);
    if (!buf) return qn_fail(-ENOMEM, "out of memory");
    if (!(rc = qn_io_open(&io, &p))) {
        int f = qn_io_add_file(io, r->ceil_file);
        rc = f < 0 ? f : 0;
        uint64_t fsize = f < 0 ? 0 : qn_io_file_size(io, f);
        if (!rc && !fsize) rc = qn_fail(-EINVAL, "%s: empty file", r->ceil_file);
        if (!rc) snprintf(r->ceil_engine, sizeof r->ceil_engine, "%s%s", qn_io_engine_name(io),
                          qn_io_is_direct(io, f) ? " direct" : " buffered");
        if (!rc) rc = ceil_reads(io, f, fsize, buf, &r->ceil_gbps, &r->ceil_bytes);
    }
    qn_io_close(&io);
    free(buf);
    return rc;
}

enum { H2D_BYTES = 64u << 20, H2D_REPS = 8, BAR_BYTES = 128u << 20, BAR_REPS = 4 };

struct bar_part {
    unsigned char *dst;
    const unsigned char *src;
    size_t n;
};

static void *bar_copy(void *arg)
{
    const struct bar_part *p = arg;
    for (int i = 0; i < BAR_REPS; i++) memcpy(p->dst, p->src, p->n);
    return NULL;
}

/* The BAR path's limit: host memory -> a device-local host-visible mapping (resizable BAR) by as many threads as
 * the buffered reader uses, the way page-cache reads write into BAR slots. 0 when no such memory maps. */
static void bar_write(qn_vk *v, struct bench_result *r)
{
    enum { MAXT = 64 };
    qn_buf *dst = NULL;
    unsigned char *src = malloc(BAR_BYTES);
    int nt = qn_io_default_threads();
    nt = nt > MAXT ? MAXT : nt;
    if (!src || qn_buf_create(v, QN_MEM_DEVICE_MAPPED, BAR_BYTES, "bar write test", &dst) || !dst->map) {
        free(src);
        qn_buf_destroy(v, &dst);
        return;
    }
    memset(src, 0x5a, BAR_BYTES);
    memcpy(dst->map, src, BAR_BYTES);   /* warm-up: maps every page */
    pthread_t th[MAXT];
    struct bar_part part[MAXT];
    size_t per = BAR_BYTES / (size_t)nt / 4096 * 4096;
    double t0 = qn_now_s();
    int started = 0;
    for (int i = 0; i < nt; i++) {
        part[i] = (struct bar_part){ (unsigned char *)dst->map + (size_t)i * per, src + (size_t)i * per,
                                     i + 1 < nt ? per : BAR_BYTES - (size_t)i * per };
        if (!pthread_create(&th[i], NULL, bar_copy, &part[i])) started++;
        else bar_copy(&part[i]);
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double t = qn_now_s() - t0;
    r->bar_gbps = t > 0 ? (double)BAR_BYTES * BAR_REPS / t / 1e9 : 0;
    r->bar_threads = nt;
    qn_buf_destroy(v, &dst);
    free(src);
}

/* The staged path's second limit: vkCmdCopyBuffer from host-visible staging to device memory on the transfer
 * queue (the copies of expert pieces), H2D_REPS copies of H2D_BYTES after one warm-up. */
static int h2d_copy(qn_vk *v, struct bench_result *r)
{
    qn_buf *src = NULL, *dst = NULL;
    qn_cmd *c = NULL;
    int rc = qn_buf_create(v, QN_MEM_UPLOAD, H2D_BYTES, "h2d copy source", &src);
    if (!rc) rc = qn_buf_create(v, QN_MEM_DEVICE, H2D_BYTES, "h2d copy destination", &dst);
    if (!rc) rc = qn_cmd_create_on(v, QN_QUEUE_TRANSFER, &c);
    if (!rc) memset(src->map, 0x5a, H2D_BYTES);
    if (!rc) rc = qn_cmd_begin(c);
    if (!rc) rc = qn_cmd_copy(c, src, 0, dst, 0, H2D_BYTES);
    if (!rc) rc = qn_cmd_end(c);
    if (!rc) rc = qn_cmd_run(c);
    double t0 = qn_now_s();
    for (int i = 0; !rc && i < H2D_REPS; i++) rc = qn_cmd_run(c);
    double t = qn_now_s() - t0;
    r->h2d_gbps = !rc && t > 0 ? (double)H2D_BYTES * H2D_REPS / t / 1e9 : 0;
    qn_cmd_destroy(&c);
    qn_buf_destroy(v, &src);
    qn_buf_destroy(v, &dst);
    return rc;
}

static void stream_snap(const qn_model *m, struct bench_stream *s)
{
    struct qn_io_stats is;
    memset(s, 0, sizeof *s);
    if (!m->stream || qn_mst_stats(m, &s->es, &is)) return;
    s->io_bytes = is.bytes;
    s->io_busy_ns = is.busy_ns;
    qn_mst_times(m, &s->t);
}

/* acc += b - a for the counters the report uses */
static void stream_add_delta(struct bench_stream *acc, const struct bench_stream *a, const struct bench_stream *b)
{
#define D(f) acc->f += b->f - a->f
    D(es.accesses); D(es.hits); D(es.misses); D(es.bytes_read); D(es.stall_ns);
    D(es.pf_guessed); D(es.pf_correct); D(es.pf_used); D(io_bytes); D(io_busy_ns);
    D(t.route_ns); D(t.tx_tail_ns); D(t.copy_busy_ns); D(t.copy_bytes); D(t.batches); D(t.gpu_calls);
    D(t.gpu_route_ms); D(t.gpu_experts_ms); D(t.gpu_other_ms); D(t.gpu_wait_ms);
    D(t.miss_ns); D(t.miss_fills); D(t.pf_inflight); D(t.pf_dropped);
#undef D
}

static int run_reps(const struct bench_opts *o, const qn_model *m, qn_session *s, struct bench_result *r)
{
    FILE *log = o->json ? stderr : stdout;
    int prompt = (int)o->prompt, decode = (int)o->decode;
    int32_t *ids = malloc(sizeof *ids * (size_t)prompt), first = -1, next;
    if (!ids) return qn_fail(-ENOMEM, "out of memory");
    qn_rng rng;
    qn_rng_seed(&rng, 1234);
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)(qn_rng_u64(&rng) % (uint64_t)m->c.vocab_size);
    int rc = 0;
    r->best_prefill_s = r->best_decode_s = 1e30;
    for (int rep = 0; !rc && rep < o->reps; rep++) {
        struct bench_stream s0, s1;
        double a = qn_now_s();
        if (!(rc = qn_session_reset(s))) rc = qn_session_greedy(s, ids, prompt, &next, NULL);
        double b = qn_now_s();
        if (rc) break;
        if (rep == 0) first = next;
        else if (next != first) fprintf(log, "NOTE: repetition %d chose %d after the prompt, the first %d\n", rep, next, first);
        stream_snap(m, &s0);
        for (int i = 0; !rc && i < decode; i++) rc = qn_session_greedy(s, &next, 1, &next, NULL);
        double d = qn_now_s();
        stream_snap(m, &s1);
        stream_add_delta(&r->dec, &s0, &s1);
        r->dec_tokens += (uint64_t)decode;
        if (b - a < r->best_prefill_s) r->best_prefill_s = b - a;
        if (decode && d - b < r->best_decode_s) r->best_decode_s = d - b;
        fprintf(log, "rep %d: prefill %d tokens %.3f s (%.0f tok/s), decode %d tokens %.3f s (%.1f tok/s)\n", rep,
                prompt, b - a, prompt / (b - a), decode, d - b, decode ? decode / (d - b) : 0.0);
    }
    free(ids);
    return rc;
}

/* Derived numbers both reports print. */
struct bench_view {
    double prefill_tps, decode_tps, wbytes, wgbps;
    bool streaming;
    double hit_rate, read_per_tok, io_gbps, stall_ms, pf_prec, pf_rec, ceil_tps, ratio;
    bool have_pf, have_ceil;
    struct qn_mem_stats mem; /* device memory at the end of the runs: weights, KV cache, state, activations */
};

static void view_of(const struct bench_opts *o, const qn_model *m, const struct bench_result *r, struct bench_view *w)
{
    memset(w, 0, sizeof *w);
    w->prefill_tps = (double)o->prompt / r->best_prefill_s;
    w->decode_tps = o->decode ? (double)o->decode / r->best_decode_s : 0;
    w->wbytes = (double)qn_model_decode_bytes(m);
    w->wgbps = w->wbytes * w->decode_tps / 1e9;
    w->streaming = m->stream != NULL;
    qn_mem_stats(m->v, &w->mem);
    if (!w->streaming || !r->dec_tokens) return;
    const struct bench_stream *d = &r->dec;
    double tok = (double)r->dec_tokens;
    w->hit_rate = d->es.accesses ? (double)d->es.hits / (double)d->es.accesses : 1.0;
    w->read_per_tok = (double)d->io_bytes / tok;
    w->io_gbps = d->io_busy_ns ? (double)d->io_bytes / (double)d->io_busy_ns : 0;
    w->stall_ms = (double)d->es.stall_ns / 1e6 / tok;
    w->have_pf = d->es.pf_guessed > 0;
    if (w->have_pf) { w->pf_prec = qn_exp_precision(&d->es); w->pf_rec = qn_exp_recall(&d->es); }
    w->have_ceil = w->read_per_tok > 0 && r->ceil_gbps > 0;
    if (w->have_ceil) {
        w->ceil_tps = r->ceil_gbps * 1e9 / w->read_per_tok;
        w->ratio = w->decode_tps / w->ceil_tps;
    }
}

static void report_text(const struct bench_opts *o, const qn_model *m, const struct bench_result *r,
                        const struct bench_view *w)
{
    printf("best: prefill %.0f tok/s (chunk %u, matmul tile %s); ", w->prefill_tps, r->chunk,
           o->tune.matmul[0] ? "from --mm" : "default");
    if (o->decode)
        printf("decode %.2f ms/token = %.1f tok/s, %.2f GB of weights per token -> %.2f GB/s\n",
               1e3 / w->decode_tps, w->decode_tps, w->wbytes / 1e9, w->wgbps);
    else
        printf("no decode\n");
    printf("device memory: %.2f GiB in use of a %.2f GiB budget (dense weights %.2f GiB; the rest: expert slots in "
           "device memory, KV cache, recurrent state, activations)\n", w->mem.device_used / 1073741824.0,
           w->mem.device_budget / 1073741824.0, m->dense_bytes / 1073741824.0);
    if (!w->streaming) { printf("experts: every one resident (%u slots), no streaming\n", m->n_slots); return; }
    printf("streaming %u slots of %.2f MiB: decode hit rate %.4f, read %.2f MB per token at %.3f GB/s, "
           "stall %.3f ms per token", m->n_slots, (double)(m->slot_bytes + m->d_slot_bytes) / 1048576.0, w->hit_rate,
           w->read_per_tok / 1e6, w->io_gbps, w->stall_ms);
    if (w->have_pf) printf(", prefetch precision %.3f recall %.3f", w->pf_prec, w->pf_rec);
    printf("\n");
    if (w->have_ceil)
        printf("IO ceiling: %.3f GB/s / %.4f GB of misses per token = %.1f tok/s; measured decode %.1f tok/s = "
               "%.1f%% of it (%s, %s)\n", r->ceil_gbps, w->read_per_tok / 1e9, w->ceil_tps, w->decode_tps,
               100.0 * w->ratio, r->ceil_file, r->ceil_engine);
    else
        printf("IO ceiling: %.3f GB/s (%s, %s); no bytes read while decoding, no limit from IO\n", r->ceil_gbps,
               r->ceil_file, r->ceil_engine);
    if (w->have_ceil && r->h2d_gbps > 0)
        printf("host -> device copies (staged streaming, transfer queue): %.3f GB/s = %.1f tok/s at these misses\n",
               r->h2d_gbps, r->h2d_gbps * 1e9 / w->read_per_tok);
    if (w->have_ceil && r->bar_gbps > 0)
        printf("host memory -> BAR mapping (%d threads, BAR streaming): %.3f GB/s = %.1f tok/s at these misses\n",
               r->bar_threads, r->bar_gbps, r->bar_gbps * 1e9 / w->read_per_tok);
    const struct qn_mst_times *t = &r->dec.t;
    double tok = (double)(r->dec_tokens ? r->dec_tokens : 1), gpu = t->gpu_wait_ms;
    printf("decode per token (%s): stall %.3f ms, route wait %.3f ms = tx tail %.3f + GPU meanwhile %.3f + host "
           "latency %.3f; GPU busy %.3f ms; copies %.2f MiB\n", qn_mst_path(m), w->stall_ms, (double)t->route_ns / 1e6 / tok,
           (double)t->tx_tail_ns / 1e6 / tok, gpu / tok, ((double)(t->route_ns - t->tx_tail_ns) / 1e6 - gpu) / tok,
           (t->gpu_route_ms + t->gpu_experts_ms + t->gpu_other_ms) / tok, (double)t->copy_bytes / 1048576.0 / tok);
    printf("decode stall per token: until the last demand miss is in %.3f ms (%.1f misses), guesses needed while "
           "still reading %.1f, unused guesses dropped %.1f\n", (double)t->miss_ns / 1e6 / tok,
           (double)t->miss_fills / tok, (double)t->pf_inflight / tok, (double)t->pf_dropped / tok);
}

static void json_num_or_null(cJSON *o, const char *k, bool have, double v)
{
    if (have) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* Decode's per-token split of the time besides the stall (model_stream.h, struct qn_mst_times). */
static void stream_times_json(cJSON *j, const struct qn_mst_times *t, double tok)
{
    double gpu = t->gpu_wait_ms, route = (double)t->route_ns / 1e6, tail = (double)t->tx_tail_ns / 1e6;
    cJSON_AddNumberToObject(j, "route_wait_ms_per_token", route / tok);
    cJSON_AddNumberToObject(j, "tx_tail_ms_per_token", tail / tok);
    json_num_or_null(j, "gpu_busy_ms_per_token", t->gpu_calls > 0,
                     (t->gpu_route_ms + t->gpu_experts_ms + t->gpu_other_ms) / tok);
    json_num_or_null(j, "gpu_in_route_wait_ms_per_token", t->gpu_calls > 0, gpu / tok);
    json_num_or_null(j, "gpu_route_ms_per_token", t->gpu_calls > 0, t->gpu_route_ms / tok);
    json_num_or_null(j, "gpu_experts_ms_per_token", t->gpu_calls > 0, t->gpu_experts_ms / tok);
    json_num_or_null(j, "host_latency_ms_per_token", t->gpu_calls > 0, (route - tail - gpu) / tok);
    cJSON_AddNumberToObject(j, "copy_mib_per_token", (double)t->copy_bytes / 1048576.0 / tok);
    cJSON_AddNumberToObject(j, "copy_batches_per_token", (double)t->batches / tok);
    json_num_or_null(j, "copy_gb_s_while_outstanding", t->copy_busy_ns > 0,
                     t->copy_busy_ns ? (double)t->copy_bytes / (double)t->copy_busy_ns : 0);
    cJSON_AddNumberToObject(j, "stall_until_last_miss_ms_per_token", (double)t->miss_ns / 1e6 / tok);
    cJSON_AddNumberToObject(j, "demand_misses_per_token", (double)t->miss_fills / tok);
    cJSON_AddNumberToObject(j, "guesses_needed_in_flight_per_token", (double)t->pf_inflight / tok);
    cJSON_AddNumberToObject(j, "guesses_dropped_per_token", (double)t->pf_dropped / tok);
}

static void report_json(const struct bench_opts *o, qn_vk *v, const qn_model *m, const struct qn_board *b,
                        const struct bench_result *r, const struct bench_view *w)
{
    const struct qn_caps *caps = qn_vk_caps(v);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device", caps->name);
    cJSON_AddStringToObject(j, "driver", caps->driver_info);
    cJSON_AddBoolToObject(j, "validation", qn_vk_validating(v));
    cJSON_AddStringToObject(j, "board", b->name);
    cJSON_AddStringToObject(j, "model", o->c.model);
    cJSON_AddNumberToObject(j, "layers", m->c.num_layers);
    cJSON_AddNumberToObject(j, "experts", m->c.num_experts);
    cJSON_AddNumberToObject(j, "top_k", m->c.top_k);
    cJSON_AddNumberToObject(j, "dense_bytes", (double)m->dense_bytes);
    cJSON_AddNumberToObject(j, "expert_device_bytes", (double)m->expert_bytes);
    cJSON_AddNumberToObject(j, "device_bytes_used", (double)w->mem.device_used);
    cJSON_AddNumberToObject(j, "device_bytes_budget", (double)w->mem.device_budget);
    cJSON_AddNumberToObject(j, "load_s", r->load_s);
    cJSON_AddNumberToObject(j, "prompt_tokens", (double)o->prompt);
    cJSON_AddNumberToObject(j, "decode_tokens", (double)o->decode);
    cJSON_AddNumberToObject(j, "reps", (double)o->reps);
    cJSON_AddNumberToObject(j, "prefill_tok_s", w->prefill_tps);
    cJSON_AddNumberToObject(j, "decode_tok_s", w->decode_tps);
    cJSON_AddNumberToObject(j, "weight_bytes_per_token", w->wbytes);
    cJSON_AddNumberToObject(j, "weight_gb_s", w->wgbps);
    cJSON_AddBoolToObject(j, "streaming", w->streaming);
    if (w->streaming) {
        cJSON_AddNumberToObject(j, "slots", m->n_slots);
        cJSON_AddStringToObject(j, "stream_path", qn_mst_path(m));
        cJSON_AddNumberToObject(j, "slot_bytes", (double)(m->slot_bytes + m->d_slot_bytes));
        cJSON_AddNumberToObject(j, "hit_rate", w->hit_rate);
        cJSON_AddNumberToObject(j, "read_bytes_per_token", w->read_per_tok);
        cJSON_AddNumberToObject(j, "io_gb_s", w->io_gbps);
        cJSON_AddNumberToObject(j, "stall_ms_per_token", w->stall_ms);
        json_num_or_null(j, "prefetch_precision", w->have_pf, w->pf_prec);
        json_num_or_null(j, "prefetch_recall", w->have_pf, w->pf_rec);
        cJSON_AddStringToObject(j, "io_ceiling_file", r->ceil_file);
        cJSON_AddStringToObject(j, "io_ceiling_engine", r->ceil_engine);
        cJSON_AddNumberToObject(j, "io_ceiling_bytes", (double)r->ceil_bytes);
        cJSON_AddNumberToObject(j, "io_ceiling_gb_s", r->ceil_gbps);
        json_num_or_null(j, "io_ceiling_tok_s", w->have_ceil, w->ceil_tps);
        json_num_or_null(j, "decode_vs_ceiling", w->have_ceil, w->ratio);
        stream_times_json(j, &r->dec.t, (double)(r->dec_tokens ? r->dec_tokens : 1));
        cJSON_AddNumberToObject(j, "h2d_copy_gb_s", r->h2d_gbps);
        json_num_or_null(j, "bar_write_gb_s", r->bar_gbps > 0, r->bar_gbps);
        json_num_or_null(j, "bar_write_tok_s", r->bar_gbps > 0 && w->read_per_tok > 0,
                         w->read_per_tok > 0 ? r->bar_gbps * 1e9 / w->read_per_tok : 0);
        json_num_or_null(j, "h2d_copy_tok_s", w->have_ceil && r->h2d_gbps > 0,
                         w->read_per_tok > 0 ? r->h2d_gbps * 1e9 / w->read_per_tok : 0);
    }
    char *txt = cJSON_Print(j);
    if (txt) printf("%s\n", txt);
    free(txt);
    cJSON_Delete(j);
}

static void report_header(const struct bench_opts *o, qn_vk *v, const qn_model *m, const struct qn_board *b,
                          double load_s)
{
    FILE *out = o->json ? stderr : stdout;
    const struct qn_caps *caps = qn_vk_caps(v);
    const qn_config *c = &m->c;
    fprintf(out, "device '%s' (%s), board %s, validation %s\n", caps->name, caps->driver_info, b->name,
            qn_vk_validating(v) ? "ON" : "off");
    fprintf(out, "model %s: %d layers, hidden %d, %d experts top-%d, vocab %d; %.2f GiB dense (embedding %s), %u expert slots "
            "x %.2f MiB (%s); loaded in %.1f s (%.2f GB/s)\n", o->c.model, c->num_layers, c->hidden_size,
            c->num_experts, c->top_k, c->vocab_size, (double)m->dense_bytes / 1073741824.0,
            m->embed.qtype ? qn_ggml_type_name(m->embed.qtype) : qn_dtype_name(m->embed.dtype), m->n_slots, (double)(m->slot_bytes + m->d_slot_bytes) / 1048576.0,
            m->L && m->L[0].exp_qtype[0] ? "GGUF blocks" : qn_dtype_name(m->exp_dtype),
            load_s, (double)(m->dense_bytes + m->expert_bytes) / load_s / 1e9);
}

static int bench(const struct bench_opts *o)
{
    struct qn_vk_stack st;
    struct bench_result *r = calloc(1, sizeof *r);
    if (!r) return qn_fail(-ENOMEM, "out of memory");
    int rc = open_all(o, &st), opened = !rc;
    r->load_s = st.load_s;
    if (!rc) report_header(o, st.v, st.m, &st.board, r->load_s);
    if (!rc && st.m->stream) rc = io_ceiling(o, r);   /* before the run: the files' read speed alone */
    if (!rc && st.m->stream) rc = h2d_copy(st.v, r);  /* and the staged path's copy speed */
    if (!rc && st.m->stream) bar_write(st.v, r);       /* and the BAR path's write speed */
    if (!rc) r->chunk = qn_session_chunk(st.s);
    if (!rc) rc = run_reps(o, st.m, st.s, r);
    if (!rc) {
        struct bench_view w;
        view_of(o, st.m, r, &w);
        if (o->json) report_json(o, st.v, st.m, &st.board, r, &w);
        else report_text(o, st.m, r, &w);
        if (o->c.profile) qn_session_profile(st.s, o->json ? stderr : stdout);
        if (o->c.stats) qn_session_stats(st.s, o->json ? stderr : stdout);
    }
    if (opened) qn_vk_stack_close(&st);
    free(r);
    return rc;
}

int qn_cmd_bench(int argc, char **argv)
{
    struct bench_opts o = { .prompt = 512, .decode = 64, .reps = 3 };
    qn_cli_common_defaults(&o.c);
    qn_fwd_default_tune(&o.tune);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc > 0 ? 0 : -rc;
    return qn_cli_report("bench", bench(&o));
}
