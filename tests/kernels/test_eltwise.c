/* test_eltwise.c — the elementwise family (add, mul, silu, sigmoid gate, silu*mul) against C, including
 * odd sizes, in-place use, and a grid of more than 65535 workgroups (x/y split). */
#include <math.h>
#include <stdio.h>

#include "harness.h"

static double op_ref(uint32_t op, double a, double b)
{
    switch (op) {
    case QN_EW_ADD: return a + b;
    case QN_EW_MUL: return a * b;
    case QN_EW_SILU: return a / (1 + exp(-a));
    case QN_EW_SIGMOID_GATE: return a / (1 + exp(-b));
    default: return a / (1 + exp(-a)) * b;
    }
}

static const char *op_name[] = { "add", "mul", "silu", "sigmoid_gate", "silu_mul" };

static void run_case(struct qn_h *h, uint32_t op, uint32_t n, uint32_t wg, bool in_place)
{
    float *a_h, *b_h;
    qn_buf *a = qn_h_input_f32(h, "a", n, -6, 6, &a_h);
    qn_buf *b = qn_h_input_f32(h, "b", n, -6, 6, &b_h);
    qn_buf *y = in_place ? a : qn_h_output(h, "y", n);
    qn_pipe *p = qn_h_pipe(h, QN_K_ELTWISE, wg, op);
    qn_pc_eltwise pc = { .n = n };
    qn_h_run(h, p, QN_BINDS(QN_BIND(a), QN_BIND(b), QN_BIND(y)), &pc, sizeof pc, (n + wg - 1) / wg);
    float *ref = qn_h_alloc(h, n);
    for (uint32_t i = 0; i < n; i++) ref[i] = (float)op_ref(op, a_h[i], b_h[i]);
    char what[96];
    snprintf(what, sizeof what, "%s n=%u wg %u%s", op_name[op], n, wg, in_place ? " in place" : "");
    qn_h_check(h, what, y, ref, n, 1e-6, 2e-6);
    qn_h_reset(h);
}

int main(int argc, char **argv)
{
    struct qn_h h;
    qn_h_open(&h, "eltwise", argc, argv);
    static const uint32_t ns[] = { 1, 7, 256, 1000, 4099 };
    for (uint32_t op = 0; op < QN_EW_COUNT; op++) {
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) run_case(&h, op, ns[i], 256, false);
        run_case(&h, op, 777, 64, true);
    }
    run_case(&h, QN_EW_ADD, 70001, 1, false); /* 70001 groups: more than 65535 in x on some devices */
    return qn_h_close(&h);
}
