# helper decode (wave 8), sourced by the lead's H100 script: $B binaries, $M the 80B Q4_K_M file, $OUT results.
# Under ~100 s; the decisive in-model A/B first (baseline at both ends), behind a 15 s correctness gate for the flow pair.
#   QNEXT_MOEQ_FLOW=1   the routed int8 gate_up and the split down with NO barrier between them: each down group loads its
#                       weights, then waits (flow words, common/moe_flow.glsl) for its own expert's act row only
#   QNEXT_MV_PARTS=1    the old default under int8 (mixed-type in_proj in one f32-x mv_parts dispatch); the new default
#                       is one int8 dispatch per part (run 30: 184.0 vs 179.5)
#   QNEXT_I8_STAGE4=1   int8 matvecs quantize x with 4 invocations per block (run 30: +1%, one more A/B)
d_t0=$(date +%s)
{
echo "#### decode: test_moe_q --flow (the barrier-free pair on real concurrency: bit-identical to the barrier pair)"
timeout 15 $B/test_moe_q --flow > /tmp/d_flow.txt 2>&1; frc=$?
echo "test_moe_q --flow rc=$frc"; grep -E "^(ok|FAIL)" /tmp/d_flow.txt | cut -c1-260
F=QNEXT_MOEQ_FLOW=1; [ $frc -eq 0 ] || F=QNEXT_I8_STAGE4=1 # no flow variant unless its check passed
echo "#### decode: decode A/B (prefill-ab, 128 decode steps per variant; flow variant: $F)"
timeout 80 $B/qnext prefill-ab -m $M --prompts 16 --reps 1 --decode 128 --variant - --variant "$F" \
  --variant QNEXT_MV_PARTS=1 --variant QNEXT_I8_STAGE4=1 --variant - --variant "$F" --variant "$F QNEXT_I8_STAGE4=1" \
  --variant - > /tmp/d_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "decode|rror|FAIL" /tmp/d_ab.txt | head -20
cat /tmp/d_flow.txt /tmp/d_ab.txt > $OUT/decode_full.txt
if [ $(( $(date +%s) - d_t0 )) -lt 70 ]; then # the kernel bench: gate_up + split down with and without the barrier
  echo "#### decode: test_moe_q --bench --quick --layers 8 (us per layer; warmed)"
  timeout 25 $B/test_moe_q --bench --quick --layers 8 --tokens 4 --reps 3 > /tmp/d_bench.txt 2>&1
  echo "bench rc=$?"; grep -E "i8 gate_up|per layer" /tmp/d_bench.txt | cut -c1-200; cat /tmp/d_bench.txt >> $OUT/decode_full.txt
fi
echo "== decode fragment $(( $(date +%s) - d_t0 )) s"
} 2>&1 | tee -a $OUT/decode.txt
