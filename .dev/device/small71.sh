# .dev/device/small71.sh — lead (run 71): the small-call grouped MoE layout (below 60 pairs per expert) double-buffered
# now that CS_IN_W frees its staging: bench-cm at T 2048, prefill A/B at 512-2048. ~200 s.
h_t0=$(date +%s)
{
QNEXT_BENCH_T=2048 timeout 90 $B/test_moe_qgrouped --bench-cm 5 256,32,64,1,1,2 128,32,64,2,1,2 256,16,64,2,1,2 128,32,64,2,1,4 > /tmp/h_bc.txt 2>&1
echo "bench-cm rc=$?"; grep -E "FAIL|^ok|^bench" /tmp/h_bc.txt | head -12
timeout 200 $B/qnext prefill-ab -m $M --prompts 512,1024,2048 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE_SMALL=128,32,64,2,1,2 \
  --variant QNEXT_CM_MOE_TILE_SMALL=256,16,64,2,1,2 --variant QNEXT_CM_MOE_TILE_SMALL=128,32,64,2,1,4 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== small71: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/small71.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
