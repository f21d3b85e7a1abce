# .dev/device/idot.sh — helper "idot" (int8 dot-product decode matvecs, QNEXT_IDOT=1), sourced by the lead's H100 run
# script. Needs $B (binary dir with qnext and the test binaries), $M (full 80B Q4_K_M gguf, in the page cache), $OUT.
# At most ~100 s. Summary to stdout and $OUT/idot.txt, full logs to $OUT/idot_full.txt.
#   1. test_qmatvec_i8 on the H100 (correctness on NVIDIA: its tight bound assumes a correctly rounded 127 / amax;
#      a FAIL line "vs W.dq(x)" with "vs W.x" ok means only that, not a wrong kernel)
#   2. decode A/B in the model, interleaved, baseline at both ends: QNEXT_IDOT=1 = in_proj parts, out_proj / o_proj,
#      attention parts, shared down and lm_head on the int8-dot twins (same layouts as the plain kernels)
#   3. bench --profile with QNEXT_IDOT=1 (per-op times to set against the plain profile in docs/perf.md)
idot_t0=$(date +%s)
{ echo "#### idot: test_qmatvec_i8 on the device"; timeout 15 $B/tests/kernels/test_qmatvec_i8 2>&1 | grep -E "FAIL|worst|SKIP|error" | head -20; } \
  | tee -a $OUT/idot.txt
timeout 70 $B/qnext prefill-ab -m $M --prompts 16 --reps 1 --decode 128 \
  --variant "-" --variant "QNEXT_IDOT=1" --variant "-" --variant "QNEXT_IDOT=1" --variant "-" > /tmp/idot_ab.txt 2>&1
echo "idot prefill-ab rc=$?" >> /tmp/idot_ab.txt
{ echo "#### idot: decode A/B (prefill-ab, 128 decode steps per variant)"; grep -E "decode|rc=|error|warn|IDOT" /tmp/idot_ab.txt; } | tee -a $OUT/idot.txt
cat /tmp/idot_ab.txt >> $OUT/idot_full.txt
if [ $(( $(date +%s) - idot_t0 )) -lt 70 ]; then
  QNEXT_IDOT=1 timeout 30 $B/qnext bench -m $M --prompt 16 --decode 32 --profile > /tmp/idot_prof.txt 2>&1
  { echo "#### idot: bench --profile with QNEXT_IDOT=1 (rc=$?)"; head -60 /tmp/idot_prof.txt; } | tee -a $OUT/idot.txt
fi
echo "idot fragment: $(( $(date +%s) - idot_t0 )) s" | tee -a $OUT/idot.txt
