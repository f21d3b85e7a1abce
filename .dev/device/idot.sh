# .dev/device/idot.sh — helper "idot" (int8 dot-product decode matvecs, QNEXT_IDOT=1), sourced by the lead's H100 run
# script. Needs $B (binary dir with qnext and the test binaries), $M (full 80B Q4_K_M gguf, in the page cache), $OUT.
# At most ~105 s. Summary to stdout and $OUT/idot.txt, full logs to $OUT/idot_full.txt.
#   1. test_qmatvec_i8 on the H100 (correctness on NVIDIA: its tight bound assumes a correctly rounded 127 / amax;
#      a FAIL line "vs W.dq(x)" with "vs W.x" ok means only that, not a wrong kernel)
#   2. decode A/B in the model, interleaved, baseline at both ends: QNEXT_IDOT=1 = in_proj / qkv parts, out_proj /
#      o_proj and lm_head on the int8-dot twins (same layouts as the plain kernels); QNEXT_IDOT=2 = also the routed
#      experts' gate_up (moe_q_i8.comp)
#   3. kernel bandwidth, plain vs twin, default layout, on the decode shapes (selftest sweep, warmed)
idot_t0=$(date +%s)
timeout 20 $B/test_qmatvec_i8 --small > /tmp/idot_test.txt 2>&1
{ echo "#### idot: test_qmatvec_i8 --small on the device: rc=$? $(grep -c '^ok' /tmp/idot_test.txt) ok, $(grep -c '^FAIL' /tmp/idot_test.txt) FAIL"
  grep -E "^FAIL|worst|SKIP|rror" /tmp/idot_test.txt | head -12; } | tee -a $OUT/idot.txt
timeout 70 $B/qnext prefill-ab -m $M --prompts 16 --reps 1 --decode 128 \
  --variant "-" --variant "QNEXT_IDOT=1" --variant "QNEXT_IDOT=2" --variant "-" --variant "QNEXT_IDOT=1" \
  --variant "QNEXT_IDOT=2" --variant "-" > /tmp/idot_ab.txt 2>&1
echo "idot prefill-ab rc=$?" >> /tmp/idot_ab.txt
{ echo "#### idot: decode A/B (prefill-ab, 128 decode steps per variant)"; grep -E "decode|rc=|rror|warn|IDOT" /tmp/idot_ab.txt; } | tee -a $OUT/idot.txt
cat /tmp/idot_ab.txt >> $OUT/idot_full.txt
for v in 0 1; do
  idot_left=$(( 105 - ($(date +%s) - idot_t0) )); [ $idot_left -gt 20 ] && idot_left=20; [ $idot_left -ge 8 ] || break
  QNEXT_IDOT=$v QNEXT_BENCH_WARM_MS=100 QNEXT_SWEEP_LAYOUTS="256,16,2,2,1024" QNEXT_SWEEP_SHAPES="12352x2048,2048x4096,4096x2048" QNEXT_SWEEP_NORM=1 \
    timeout $idot_left $B/qnext selftest --bench --sweep --sweep-only q4_k,q6_k --iters 3 > /tmp/idot_sw$v.txt 2>&1
  { echo "#### idot: norm matvec kernels, QNEXT_IDOT=$v (rc=$?; GB/s on in_proj 12352x2048 / 2048x4096 / 4096x2048)"; grep -E "^sweep|FAIL" /tmp/idot_sw$v.txt; } | tee -a $OUT/idot.txt
done
echo "idot fragment: $(( $(date +%s) - idot_t0 )) s" | tee -a $OUT/idot.txt
