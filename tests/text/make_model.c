/* make_model.c — writes a small random-weight qwen3_next checkpoint (config.json + model.safetensors, f32)
 * for the text tests: any config, e.g. a tiny trunk over the real 151,936-id vocabulary, so `qnext run` and
 * `qnext chat` can be driven end to end with the real tokenizer in well under a second per token.
 *
 *     make_model CONFIG.json OUTDIR SEED
 *
 * Values follow the golden fixtures' recipe (see loader/synth.h): embed N(0,1), lm_head N(0, 2/sqrt(H)),
 * matrices N(0, 1/sqrt(fan_in)), zero-centred norms N(0, 0.2), the gated norm 1 + N(0, 0.2),
 * A_log = log U(1,16), dt_bias N(0, 0.5), conv1d N(0, 0.5). Deterministic from SEED. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "qn_err.h"
#include "qn_rng.h"
#include "safetensors.h"
#include "tensors.h"

struct list {
    qn_st_wtensor *t;
    char (*names)[128];
    int n, cap;
};

static int collect(void *user, const qn_tensor_spec *s)
{
    struct list *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->t = realloc(l->t, sizeof *l->t * (size_t)l->cap);
        l->names = realloc(l->names, sizeof *l->names * (size_t)l->cap);
        if (!l->t || !l->names) return -ENOMEM;
    }
    memcpy(l->names[l->n], s->name, sizeof l->names[0]);
    l->t[l->n] = (qn_st_wtensor){ .dtype = QN_DT_F32, .ndim = s->ndim };
    for (int d = 0; d < s->ndim; d++) l->t[l->n].shape[d] = s->shape[d];
    l->n++;
    return 0;
}

static bool ends(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static float value(qn_rng *r, const char *name, const qn_st_wtensor *t, int H)
{
    if (ends(name, "A_log")) return logf(qn_rng_range(r, 1.0f, 16.0f));
    if (ends(name, "dt_bias") || ends(name, "conv1d.weight")) return 0.5f * qn_rng_normal(r);
    if (ends(name, "linear_attn.norm.weight")) return 1.0f + 0.2f * qn_rng_normal(r);
    if (t->ndim == 1) return 0.2f * qn_rng_normal(r);
    if (!strcmp(name, "model.embed_tokens.weight")) return qn_rng_normal(r);
    if (!strcmp(name, "lm_head.weight")) return 2.0f / sqrtf((float)H) * qn_rng_normal(r);
    return qn_rng_normal(r) / sqrtf((float)t->shape[t->ndim - 1]);
}

static int write_model(const qn_config *c, const char *dir, uint64_t seed)
{
    struct list l = { 0 };
    char path[4096];
    qn_st_writer *w = NULL;
    qn_rng r;
    int rc = qn_cfg_tensors(c, collect, &l);
    for (int i = 0; !rc && i < l.n; i++) l.t[i].name = l.names[i];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = qn_st_writer_open(&w, path, l.t, l.n, NULL);
    qn_rng_seed(&r, seed);
    float buf[4096];
    for (int i = 0; !rc && i < l.n; i++) {
        int64_t count = 1;
        for (int d = 0; d < l.t[i].ndim; d++) count *= l.t[i].shape[d];
        for (int64_t done = 0; !rc && done < count;) {
            int m = count - done < 4096 ? (int)(count - done) : 4096;
            for (int j = 0; j < m; j++) buf[j] = value(&r, l.names[i], &l.t[i], c->hidden_size);
            rc = qn_st_writer_put_f32(w, buf, (size_t)m);
            done += m;
        }
    }
    if (w) {
        int crc = qn_st_writer_close(&w);
        if (!rc) rc = crc;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc) rc = qn_cfg_write(c, path);
    free(l.t);
    free(l.names);
    return rc;
}

int main(int argc, char **argv)
{
    qn_config c;
    if (argc != 4) {
        fprintf(stderr, "usage: make_model CONFIG.json OUTDIR SEED\n");
        return 2;
    }
    int rc = qn_cfg_load(&c, argv[1]);
    if (!rc && mkdir(argv[2], 0755) && errno != EEXIST) rc = qn_fail(-errno, "%s: %s", argv[2], strerror(errno));
    if (!rc) rc = write_model(&c, argv[2], strtoull(argv[3], NULL, 0));
    if (rc) {
        fprintf(stderr, "make_model: %s\n", qn_errmsg());
        return 1;
    }
    return 0;
}
