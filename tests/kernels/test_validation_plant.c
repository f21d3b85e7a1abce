/* test_validation_plant.c — proves the validation checker works: plants errors the Khronos layer must
 * report and passes only if each one raised the message count:
 *   1. a dispatch with the pipeline bound but no descriptor set (VUID-vkCmdDispatch-None-02697);
 *   2. a dispatch reading a buffer the previous dispatch wrote, with no barrier (a read-after-write hazard
 *      that only synchronization validation reports);
 *   3. two fills of one buffer with no barrier (write-after-write, sync validation).
 * Note: layer 1.3.239 does NOT report write-after-write between two dispatches that only write a buffer
 * (writeonly SSBO); read-after-write is reported.
 * The messenger runs in "skip" mode, so the invalid commands never reach the driver. */
#include <stdio.h>

#include "qn_log.h"
#include "vk.h"

static int check(const char *what, uint32_t before)
{
    uint32_t n = qn_vk_validation_count() - before;
    printf("%-4s planted %s: %u validation message(s)\n", n ? "ok" : "FAIL", what, n);
    return n ? 0 : 1;
}

int main(void)
{
    qn_vk *v = NULL;
    qn_cmd *c = NULL;
    qn_buf *a = NULL, *y = NULL;
    qn_pipe *p = NULL;
    int bad = 0, rc;
    struct qn_vk_params params;
    qn_vk_default_params(&params);
    params.validation = 1;
    params.validation_skip_calls = true;
    qn_log_set(NULL, NULL, QN_LOG_WARN);
    rc = qn_vk_open(&v, &params);
    if (rc == QN_E_SKIP || rc == QN_E_NODEV) {
        fprintf(stderr, "\n*** SKIP validation_plant: %s ***\n\n", qn_errmsg());
        return 77;
    }
    if (rc < 0 || (rc = qn_cmd_create(v, &c)) < 0 || (rc = qn_buf_create(v, QN_MEM_DEVICE, 4096, "a", &a)) < 0 ||
        (rc = qn_buf_create(v, QN_MEM_DEVICE, 4096, "y", &y)) < 0 ||
        (rc = qn_pipe_get(v, QN_K_ELTWISE, (uint32_t[]){ 64, QN_EW_ADD }, 2, &p)) < 0) {
        fprintf(stderr, "FAIL validation_plant: setup: %s\n", qn_errmsg());
        return 1;
    }
    uint32_t clean = qn_vk_validation_count();
    qn_pc_eltwise pc = { .n = 1024 };

    uint32_t before = qn_vk_validation_count();
    qn_cmd_begin(c);
    vkCmdBindPipeline(qn_cmd_vk(c), VK_PIPELINE_BIND_POINT_COMPUTE, qn_pipe_vk(p));
    vkCmdDispatch(qn_cmd_vk(c), 16, 1, 1);
    qn_cmd_end(c);
    bad |= check("dispatch without a descriptor set", before);

    before = qn_vk_validation_count();
    qn_cmd_begin(c);
    qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(a), QN_BIND(a), QN_BIND(y)), &pc, sizeof pc, 16);
    qn_cmd_dispatch_n(c, p, QN_BINDS(QN_BIND(y), QN_BIND(a), QN_BIND(a)), &pc, sizeof pc, 16); /* no barrier */
    qn_cmd_end(c);
    bad |= check("dispatch reading what the previous dispatch wrote, no barrier (sync validation)", before);

    before = qn_vk_validation_count();
    qn_cmd_begin(c);
    qn_cmd_fill(c, y, 0, 4096, 1);
    qn_cmd_fill(c, y, 0, 4096, 2);
    qn_cmd_end(c);
    bad |= check("fill after fill, no barrier (sync validation)", before);

    qn_buf_destroy(v, &a);
    qn_buf_destroy(v, &y);
    qn_cmd_destroy(&c);
    qn_vk_close(&v);
    if (clean) {
        printf("FAIL setup itself raised %u validation message(s)\n", clean);
        bad = 1;
    }
    printf("%s validation_plant\n", bad ? "FAIL" : "PASS");
    return bad;
}
