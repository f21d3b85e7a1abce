# .dev/device/wy74.sh — lead (run 74): the two-pass delta rule with a segment's pass 1 beside the previous segment's
# pass 2 (no barrier between; QNEXT_GDN_WY_OVERLAP=0 the old order), segment lengths; the grouped MoE at BK 64. ~400 s.
h_t0=$(date +%s)
. .dev/device/lib_logits_ab.sh
{
timeout 120 $B/test_gdn > /tmp/h_g.txt 2>&1; echo "test_gdn rc=$?"; grep -E "FAIL|^PASS|checks" /tmp/h_g.txt | tail -3
logits_ab QNEXT_GDN_WY_OVERLAP 3500 --last
timeout 260 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_OVERLAP=0 \
  --variant QNEXT_GDN_WY_SEG=8 --variant QNEXT_GDN_WY_SEG=4 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -9
QNEXT_CM_MOE_TILE=128,64,128,2,1,4 timeout 90 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped BK 64 rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | head -4
QNEXT_BENCH_T=4096 timeout 90 $B/test_moe_qgrouped --bench-cm 5 128,32,128,2,1,4 128,64,128,2,1,4 128,64,128,1,1,4 256,32,128,2,1,4 > /tmp/h_bc.txt 2>&1
echo "bench-cm rc=$?"; grep -E "FAIL|^ok|^bench" /tmp/h_bc.txt | head -12
echo "== wy74: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy74.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
{
for p in "" _p1 _p2 _p3; do
  [ -x $B/test_gdn$p ] || continue
  timeout 60 $B/test_gdn$p --bench-wy 4096 > /tmp/h_w$p.txt 2>&1; echo "test_gdn$p --bench-wy rc=$?"; grep -E "^bench" /tmp/h_w$p.txt | head -3
done
echo "== wy74 probes: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy74.txt
cp /tmp/h_w*.txt $OUT/ 2>/dev/null
