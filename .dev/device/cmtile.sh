# .dev/device/cmtile.sh — lead (run 36): qmatmul_cm's subgroup tile (spec 6-7: WTM x WTN of 32 / 64): the kernel
# tests on the driver, the q4_k kernel bench by layout, then the in-model A/B of the big / small tiles. ~240 s.
c_t0=$(date +%s)
{
timeout 90 $B/test_qmatmul > /tmp/c_t.txt 2>&1
echo "test_qmatmul: rc=$? $(grep -c '^ok' /tmp/c_t.txt) ok, $(grep -c '^FAIL' /tmp/c_t.txt) FAIL"; grep -E "^FAIL|SKIP|worst" /tmp/c_t.txt | head -8
QNEXT_BENCH_CM_ONLY=q4_k timeout 70 $B/test_qmatmul --bench 5 > /tmp/c_b.txt 2>&1; echo "bench rc=$?"
grep -E "^bench" /tmp/c_b.txt | sed -e 's/(QNEXT_CM_TILE)//' | awk '{print $3, $4, $5, $8, $9, $12}'
timeout 150 $B/qnext prefill-ab -m $M --prompts 512,4096 --reps 2 --variant - \
  --variant QNEXT_CM_BIG=128,128,32,1,64,32 --variant QNEXT_CM_BIG=128,128,32,1,32,64 \
  --variant QNEXT_CM_BIG=128,128,32,1,64,64 --variant QNEXT_CM_BIG=128,128,32,2,64,32 \
  --variant "QNEXT_CM_TILE=64,64,32,1,64,32 QNEXT_CM_BIG=128,128,32,1,32,32" \
  --variant "QNEXT_CM_TILE=64,64,32,2,32,32 QNEXT_CM_BIG=128,128,32,1,32,32" --variant - > /tmp/c_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/c_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/c_ab.txt
echo "== cmtile: $(( $(date +%s) - c_t0 )) s"
} 2>&1 | tee -a $OUT/cmtile.txt
cp /tmp/c_t.txt /tmp/c_b.txt /tmp/c_ab.txt $OUT/ 2>/dev/null
