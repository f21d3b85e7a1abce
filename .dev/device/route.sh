# .dev/device/route.sh — helper "route" (wave 8: the decode route stage), sourced by the lead's H100 script.
# Needs $B (qnext, test_mv_norm), $M (80B Q4_K_M, page cache), $OUT. The decisive in-model A/B comes first.
#   QNEXT_ROUTE_BOUND=1: the routing tail's top-10-of-512 through a bound (moe_route.glsl select_bound: one
#   subgroupMax per subgroup, the 10th best of the 16 maxima as a bound, the few elements above it ranked), instead
#   of the two-stage rounds (run 28: the selection ~4.6-6.1 us of moe_router's 8.1-9.5). Same ids bit for bit.
r_t0=$(date +%s)
{
echo "#### route: decode A/B (prefill-ab, 16-token prompt, 128 decode steps; baseline at both ends)"
timeout 60 $B/qnext prefill-ab -m $M --prompts 16 --reps 1 --decode 128 --variant - --variant QNEXT_ROUTE_BOUND=1 \
  --variant - --variant QNEXT_ROUTE_BOUND=1 --variant QNEXT_ROUTE_BOUND=1 --variant - 2>&1 | grep -E "decode|rror"
echo "#### route: test_mv_norm --route-one (NVIDIA correctness: route_mixed + moe_router, the bound's cases)"
timeout 20 $B/test_mv_norm --route-one > /tmp/r_one.txt 2>&1
echo "test_mv_norm --route-one rc=$? $(grep -c '^ok' /tmp/r_one.txt) ok, $(grep -c '^FAIL' /tmp/r_one.txt) FAIL"
grep -E "^FAIL" /tmp/r_one.txt | head -5
echo "#### route: test_mv_norm --bench-route 64 (us per layer incl. a barrier, warmed)"
QNEXT_BENCH_WARM_MS=30 timeout 20 $B/test_mv_norm --bench-route 64 2>&1 | grep -E "^bench-route|rror"
echo "#### route: decode profile with QNEXT_ROUTE_BOUND=1 (route_mixed's row; default: the lead's profile)"
QNEXT_ROUTE_BOUND=1 QNEXT_PROFILE_DISPATCH=1 timeout 22 $B/qnext bench -m $M --prompt 16 --decode 32 --profile 2>&1 | \
  grep -E "route_mixed|moe_q_gu|total|dispatches per|rror"
echo "route fragment: $(( $(date +%s) - r_t0 )) s"
} >> $OUT/route.txt 2>&1
