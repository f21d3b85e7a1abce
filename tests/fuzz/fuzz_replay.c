/* fuzz_replay.c — runs the fuzz target without libFuzzer, deterministically, as a normal test: every corpus file,
 * then N mutants (bit flips, interesting bytes, digit edits, inserted/deleted/duplicated ranges, truncation)
 * from a fixed seed. A crash, sanitizer report or abort() in the target fails the test.
 * usage: fuzz_replay CORPUS_DIR [N_MUTANTS] [SEED] */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_file.h"
#include "qn_rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct blob { uint8_t *p; size_t n; };

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_corpus(const char *dir, struct blob **out)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    *out = calloc((size_t)n + 1, sizeof **out);
    for (int i = 0; i < n; i++) {
        char path[4096], *p;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        if (qn_read_file(path, 64u << 20, &p, &(*out)[i].n)) return -1;
        (*out)[i].p = (uint8_t *)p;
    }
    return n;
}

static size_t pick(qn_rng *r, size_t n) { return n ? (size_t)(qn_rng_u64(r) % n) : 0; }

/* One random edit of b (capacity cap) in place; returns the new length. */
static size_t mutate(qn_rng *r, uint8_t *b, size_t n, size_t cap)
{
    static const uint8_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff, '"', '{', '}', '[', ']', ',', ':', '-', '9', 'e', '.' };
    size_t at = pick(r, n), len = 1 + pick(r, 16);
    switch (qn_rng_u64(r) % 8) {
    case 0: if (n) b[at] ^= (uint8_t)(1u << pick(r, 8)); break;
    case 1: if (n) b[at] = interesting[pick(r, sizeof interesting)]; break;
    case 2: /* a digit edit: bigger or different numbers in headers and offsets */
        for (size_t i = at; i < n; i++)
            if (b[i] >= '0' && b[i] <= '9') { b[i] = (uint8_t)('0' + pick(r, 10)); break; }
        break;
    case 3: if (n > 1) n = 1 + pick(r, n - 1); break;                       /* truncate */
    case 4: if (at + len <= n) { memmove(b + at, b + at + len, n - at - len); n -= len; } break; /* delete */
    case 5: if (n + len <= cap && at + len <= n) { memmove(b + at + len, b + at, n - at); n += len; } break; /* duplicate */
    case 6: if (n >= 9) for (int i = 1; i < 9; i++) b[i] = (uint8_t)qn_rng_u64(r); break; /* header length */
    default: if (n + 1 <= cap) { memmove(b + at + 1, b + at, n - at); b[at] = (uint8_t)qn_rng_u64(r); n++; } break;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [N_MUTANTS] [SEED]\n", argv[0]);
        return 2;
    }
    struct blob *c;
    int n = load_corpus(argv[1], &c);
    long mutants = argc > 2 ? atol(argv[2]) : 4000;
    qn_rng r;
    qn_rng_seed(&r, argc > 3 ? strtoull(argv[3], NULL, 0) : 12345);
    if (n <= 0) {
        fprintf(stderr, "no corpus in %s\n", argv[1]);
        return 1;
    }
    for (int i = 0; i < n; i++) LLVMFuzzerTestOneInput(c[i].p, c[i].n);
    for (long m = 0; m < mutants; m++) {
        const struct blob *src = &c[pick(&r, (size_t)n)];
        size_t cap = src->n + 256, len = src->n;
        uint8_t *b = malloc(cap);
        memcpy(b, src->p, len);
        int edits = 1 + (int)pick(&r, 4);
        for (int e = 0; e < edits; e++) len = mutate(&r, b, len, cap);
        if (len) b[0] = src->p[0]; /* keep the target selector */
        LLVMFuzzerTestOneInput(b, len);
        free(b);
    }
    printf("fuzz replay: %d corpus files and %ld mutants ran without a crash\n", n, mutants);
    for (int i = 0; i < n; i++) free(c[i].p);
    free(c);
    return 0;
}
