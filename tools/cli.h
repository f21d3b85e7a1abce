/* cli.h — argument parsing shared by every subcommand (one place, so --help texts and errors agree).
 *
 * A subcommand that runs the model accepts the common options below; it builds its getopt_long table
 * with QN_CLI_COMMON_LONGOPTS and hands each option it does not know itself to qn_cli_common_opt(). */
#ifndef QN_CLI_H
#define QN_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qn_backend { QN_BACKEND_VULKAN = 0, QN_BACKEND_CPU = 1 };

/* Options of every command that runs the model. Defaults from qn_cli_common_defaults(). */
struct qn_cli_common {
    const char *model;          /* -m DIR or FILE */
    enum qn_backend backend;    /* --backend vulkan|cpu */
    const char *device;         /* --device INDEX|NAME-SUBSTRING (NULL = best) */
    const char *board;          /* --board NAME (NULL = match by device) */
    uint64_t expert_cache;      /* --expert-cache SIZE in bytes (0 = default from the board) */
    const char *io;             /* --io direct|buffered|auto */
    bool stats;                 /* --stats */
    int prefetch;               /* --prefetch N: guessed next-layer experts read ahead while streaming (0 = off) */
    const char *expert_policy;  /* --expert-policy lru|lfu (NULL = lru) */
    int expert_hot;             /* --expert-hot N: pin the N most used experts of expert_hot_from */
    const char *expert_hot_from;/* --expert-hot-from FILE (usage counts of an earlier --expert-trace) */
    const char *expert_trace;   /* --expert-trace FILE: write per (layer, expert) router choices at exit */
    const char *experts;        /* --experts device|host (NULL = env QNEXT_EXPERTS, else device) */
    bool profile;               /* --profile */
    int verbose;                /* -v (repeatable) */
};

/* long-option codes for the common options (values above the ASCII range) */
enum {
    QN_OPT_BACKEND = 0x1000, QN_OPT_DEVICE, QN_OPT_BOARD, QN_OPT_EXPERT_CACHE, QN_OPT_IO,
    QN_OPT_STATS, QN_OPT_PROFILE, QN_OPT_PREFETCH, QN_OPT_EXPERT_POLICY, QN_OPT_EXPERT_HOT, QN_OPT_EXPERT_HOT_FROM,
    QN_OPT_EXPERT_TRACE, QN_OPT_EXPERTS,
    QN_OPT_FIRST_FREE = 0x1100 /* subcommands number their own long options from here */
};

#define QN_CLI_COMMON_LONGOPTS                                          \
    { "model", required_argument, 0, 'm' },                            \
    { "backend", required_argument, 0, QN_OPT_BACKEND },               \
    { "device", required_argument, 0, QN_OPT_DEVICE },                 \
    { "board", required_argument, 0, QN_OPT_BOARD },                   \
    { "expert-cache", required_argument, 0, QN_OPT_EXPERT_CACHE },     \
    { "io", required_argument, 0, QN_OPT_IO },                         \
    { "stats", no_argument, 0, QN_OPT_STATS },                         \
    { "prefetch", required_argument, 0, QN_OPT_PREFETCH },             \
    { "expert-policy", required_argument, 0, QN_OPT_EXPERT_POLICY },   \
    { "expert-hot", required_argument, 0, QN_OPT_EXPERT_HOT },         \
    { "expert-hot-from", required_argument, 0, QN_OPT_EXPERT_HOT_FROM }, \
    { "expert-trace", required_argument, 0, QN_OPT_EXPERT_TRACE },     \
    { "experts", required_argument, 0, QN_OPT_EXPERTS },               \
    { "profile", no_argument, 0, QN_OPT_PROFILE },                     \
    { "verbose", no_argument, 0, 'v' }

/* Help lines for the common options, for a subcommand's --help. */
#define QN_CLI_COMMON_HELP                                                                  \
    "  -m, --model PATH       model: a Hugging Face folder (config.json + *.safetensors) or a llama.cpp\n" \
    "                         qwen3next .gguf file\n"  \
    "      --backend NAME     vulkan (default) or cpu (the plain-C reference)\n"             \
    "      --device SEL       Vulkan device: index from 'qnext devices' or a name substring\n" \
    "      --board NAME       board profile to use instead of the one matched to the device\n" \
    "      --expert-cache SZ  VRAM for routed-expert slots, e.g. 6G, 512M; smaller than the experts = stream\n" \
    "                         them from disk (default: all resident if they fit, else what fits)\n" \
    "      --experts WHERE    routed experts in device memory (default) or host: all in pinned system\n" \
    "                         memory, read by the GPU over PCIe (env QNEXT_EXPERTS=host); with\n" \
    "                         --expert-cache SZ a VRAM cache of SZ in front of them (hot experts copied in)\n" \
    "      --io MODE          expert reads: direct, buffered or auto (default auto)\n"        \
    "      --stats            print expert-cache and IO statistics to stderr\n"             \
    "      --prefetch N       streaming: read up to N guessed next-layer experts ahead (default 0)\n" \
    "      --expert-policy P  streaming: which cached expert to evict, lru (default) or lfu\n" \
    "      --expert-trace F   streaming: write how often each (layer, expert) was routed to file F at exit\n" \
    "      --expert-hot N     streaming: pin the N most used experts of --expert-hot-from's file in the\n" \
    "                         cache (read once at load, never evicted); needs N + top-k slots or more\n" \
    "      --expert-hot-from F  usage counts written by an earlier run's --expert-trace\n" \
    "      --profile          print GPU time per op family per token to stderr (per kernel and grid with\n"   \
    "                         QNEXT_PROFILE_DISPATCH=1)\n"            \
    "  -v, --verbose          more log output (repeat for debug)\n"

void qn_cli_common_defaults(struct qn_cli_common *c);
/* Returns 1 if `opt` was a common option (parsed into c), 0 if not, <0 on a bad value (message printed). */
int qn_cli_common_opt(struct qn_cli_common *c, int opt, const char *arg);

/* Value parsers: each prints "qnext CMD: --NAME: why" to stderr and returns <0 on bad input. */
int qn_cli_int(const char *cmd, const char *name, const char *s, long lo, long hi, long *out);
int qn_cli_float(const char *cmd, const char *name, const char *s, double lo, double hi, double *out);
int qn_cli_size(const char *cmd, const char *name, const char *s, uint64_t *out); /* 6G, 512M, 1.5G, 4096 */
/* "1,2,3" -> malloc'd array of ids in [0, limit) (limit 0 = no upper check). */
int qn_cli_tokens(const char *cmd, const char *s, int64_t limit, int32_t **ids, int *n);

/* Human-readable size into buf: "45.15 GB", "2.36 MB", "36.9 kB", "512 B" (powers of 1000). Returns buf. */
const char *qn_cli_bytes(uint64_t bytes, char *buf, size_t cap);

/* Print "qnext CMD: <message>" plus the thread's qn_errmsg() when `code` < 0; returns the exit status. */
int qn_cli_report(const char *cmd, int code);

/* Standard unknown-option / missing-argument message pointing at `qnext CMD --help`; returns 2. */
int qn_cli_usage_error(const char *cmd);

#endif
