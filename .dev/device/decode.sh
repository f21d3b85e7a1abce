# helper decode (wave 8), sourced by the lead's H100 script: $B binaries, $M the 80B Q4_K_M file, $OUT results.
# Under ~100 s; the decisive in-model A/B first (baseline at both ends). Variants:
#   QNEXT_MV_PARTS=1    the old default under int8 (mixed-type in_proj in one f32-x mv_parts dispatch); the new default
#                       is one int8 dispatch per part (run 30: 184.0 vs 179.5)
#   QNEXT_I8_STAGE4=1   int8 matvecs quantize x with 4 invocations per block (run 30: +1%, one more A/B)
d_t0=$(date +%s)
{
echo "#### decode: decode A/B (prefill-ab, 128 decode steps per variant)"
timeout 75 $B/qnext prefill-ab -m $M --prompts 16 --reps 1 --decode 128 --variant - --variant QNEXT_MV_PARTS=1 \
  --variant QNEXT_I8_STAGE4=1 --variant - --variant QNEXT_I8_STAGE4=1 --variant - > /tmp/d_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "decode|rror|FAIL" /tmp/d_ab.txt | head -20
cat /tmp/d_ab.txt > $OUT/decode_full.txt
echo "== decode fragment $(( $(date +%s) - d_t0 )) s"
} 2>&1 | tee -a $OUT/decode.txt
