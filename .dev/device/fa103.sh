# .dev/device/fa103.sh — lead (run 103): attn_prefill_fa (warp-owned rows, 2 barriers per tile) against
# attn_prefill_cm: the driver's registers, test_attn_cm on the tensor cores, the kernel bench, the model.
h_t0=$(date +%s)
{
$B/bench_pstats attn_prefill_cm:256,0,32,0 attn_prefill_fa:128,32,1 attn_prefill_fa:128,32,0 attn_prefill_fa:256,32,0 \
  attn_prefill_fa:128,16,1 attn_prefill_fa:256,16,1 > /tmp/h_ps.txt 2>&1
echo "pstats rc=$?"; cat /tmp/h_ps.txt | head -60
timeout 120 $B/test_attn_cm > /tmp/h_t.txt 2>&1
echo "test_attn_cm rc=$?"; grep -vE "^ok" /tmp/h_t.txt | tail -12; grep -c "^ok" /tmp/h_t.txt
timeout 150 $B/test_attn_cm --bench > /tmp/h_b.txt 2>&1
echo "bench rc=$?"; grep -E "bench|FAIL" /tmp/h_b.txt
timeout 200 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant QNEXT_ATTN_CM=fa \
  --variant "QNEXT_ATTN_CM=fa QNEXT_ATTN_FA_LAYOUT=8,32,0" --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn|prefill attention" /tmp/h_ab.txt | head -8; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== fa103: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/fa103.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
