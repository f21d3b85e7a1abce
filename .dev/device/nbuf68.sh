# .dev/device/nbuf68.sh — lead (run 68): the grouped tensor-core MoE with double-buffered tiles, its epilogue staging
# inside the weight tile (CS_IN_W): kernel checks + bench at 4096, prefill A/B. ~250 s.
h_t0=$(date +%s)
{
QNEXT_CM_MOE_TILE=128,32,128,2,1,4 timeout 90 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped (NBUF 2, TS 4) rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | head -6
QNEXT_BENCH_T=4096 timeout 90 $B/test_moe_qgrouped --bench-cm 5 128,32,128,1,1,4 128,32,128,2,1,4 128,32,128,2,1,2 128,32,64,2,1,4 > /tmp/h_bc.txt 2>&1
echo "bench-cm rc=$?"; grep -E "FAIL|^ok|^bench" /tmp/h_bc.txt | head -12
timeout 200 $B/qnext prefill-ab -m $M --prompts 2048,4096 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE=128,32,128,2,1,4 \
  --variant QNEXT_CM_MOE_TILE=128,32,128,2,1,2 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -7
echo "== nbuf68: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/nbuf68.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
