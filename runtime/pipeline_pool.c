/* pipeline_pool.c — threads that compile pipelines while the caller goes on choosing the next ones (pipeline.c
 * submits; qn_pipe_wait / qn_cmd_dispatch / qn_pipe_vk wait for the one they need). VkPipelineCache is internally
 * synchronized (ours is created without VK_PIPELINE_CACHE_CREATE_EXTERNALLY_SYNCHRONIZED_BIT). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "qn_log.h"
#include "vk_internal.h"

struct qn_pipe_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;    /* a job queued / a job finished */
    struct qn_pipe_job *head, *tail;
    bool stop;
    uint32_t nthreads;
    pthread_t th[QN_PIPE_MAX_THREADS];
};

static void *worker(void *arg)
{
    struct qn_pipe_pool *pl = arg;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (!pl->head && !pl->stop) pthread_cond_wait(&pl->work, &pl->mu);
        struct qn_pipe_job *j = pl->head;
        if (!j) break;
        pl->head = j->next;
        if (!pl->head) pl->tail = NULL;
        pthread_mutex_unlock(&pl->mu);
        qn_pipe_compile(j);
        pthread_mutex_lock(&pl->mu);
        atomic_store(&j->p->pending, 0);
        free(j);
        pthread_cond_broadcast(&pl->done);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* Threads: env QNEXT_PIPE_THREADS (0 or 1: none, pipelines compile one by one), else min(cores, 8). */
static uint32_t pool_threads(void)
{
    const char *e = getenv("QNEXT_PIPE_THREADS");
    long n = e && *e ? atol(e) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 2 ? 0 : n > QN_PIPE_MAX_THREADS ? QN_PIPE_MAX_THREADS : (uint32_t)n;
}

int qn_pipe_async_begin(qn_vk *v)
{
    uint32_t n = pool_threads();
    if (v->ppool || !n) return 0;
    struct qn_pipe_pool *pl = calloc(1, sizeof *pl);
    if (!pl) return qn_fail(-ENOMEM, "out of memory");
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->work, NULL);
    pthread_cond_init(&pl->done, NULL);
    for (; pl->nthreads < n; pl->nthreads++)
        if (pthread_create(&pl->th[pl->nthreads], NULL, worker, pl) != 0) break;
    v->ppool = pl;
    QN_DEBUG("pipelines: compiling on %u threads", pl->nthreads);
    return 0;
}

bool qn_pipe_submit(qn_vk *v, struct qn_pipe_job *j)
{
    struct qn_pipe_pool *pl = v->ppool;
    if (!pl || !pl->nthreads) return false;
    atomic_store(&j->p->pending, 1);
    j->next = NULL;
    pthread_mutex_lock(&pl->mu);
    if (pl->tail) pl->tail->next = j;
    else pl->head = j;
    pl->tail = j;
    pthread_cond_signal(&pl->work);
    pthread_mutex_unlock(&pl->mu);
    return true;
}

int qn_pipe_wait(const qn_pipe *p)
{
    struct qn_pipe_pool *pl = p->v->ppool; /* only the pool's pipelines are pending; it outlives them */
    if (pl && atomic_load(&p->pending)) {
        pthread_mutex_lock(&pl->mu);
        while (atomic_load(&p->pending)) pthread_cond_wait(&pl->done, &pl->mu);
        pthread_mutex_unlock(&pl->mu);
    }
    if (p->res < 0)
        return qn_fail(QN_E_VULKAN, "creating pipeline for kernel '%s' (workgroup %u): %s",
                       qn_kernel_infos[p->kernel].name, qn_kernel_infos[p->kernel].nspec ? p->spec[0] : 0,
                       qn_vk_result_name(p->res));
    return 0;
}

int qn_pipe_async_end(qn_vk *v)
{
    struct qn_pipe_pool *pl = v->ppool;
    if (!pl) return 0;
    pthread_mutex_lock(&pl->mu);
    pl->stop = true;
    pthread_cond_broadcast(&pl->work);
    pthread_mutex_unlock(&pl->mu);
    for (uint32_t i = 0; i < pl->nthreads; i++) pthread_join(pl->th[i], NULL);
    pthread_cond_destroy(&pl->done);
    pthread_cond_destroy(&pl->work);
    pthread_mutex_destroy(&pl->mu);
    free(pl);
    v->ppool = NULL;
    for (int k = 0; k < QN_K_COUNT; k++) /* the first creation that failed, if any */
        for (qn_pipe *p = v->kern[k].pipes; p; p = p->next)
            if (p->res < 0) return qn_pipe_wait(p);
    return 0;
}
