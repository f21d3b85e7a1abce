# .dev/device/faq108.sh — lead (run 108): attn_prefill_fa with Q as f16 in memory (QN_QG) and the next K / V tile
# fetched during the multiplies: registers, correctness, kernel bench at T 2048 / 4096.
h_t0=$(date +%s)
{
$B/bench_pstats attn_prefill_fa:256,32,0,1 attn_prefill_fa:128,32,0,1 attn_prefill_fa:256,16,0,1 attn_prefill_fa:256,32,0,0 2>&1 | sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
timeout 150 $B/test_attn_cm > /tmp/h_t.txt 2>&1
echo "test_attn_cm rc=$?"; grep -vE "^ok" /tmp/h_t.txt | tail -8; grep -c "^ok" /tmp/h_t.txt
for T in 4096 2048; do for lay in 0,1,32,0 1,8,32,0 2,8,32,0 2,4,32,0 2,8,16,0; do
  QNEXT_BENCH_T=$T QNEXT_BENCH_LAY=$lay timeout 60 $B/test_attn_cm --bench 2>&1 | grep -E "^bench|FAIL"
done; done
echo "== faq108: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/faq108.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
