# .dev/device/mmh90.sh — lead (run 90): matmul_cm_h with one tile buffer and 128 x 256 / 256 x 128 tiles: kernel checks,
# bench at the real shapes, prefill A/B. ~330 s.
h_t0=$(date +%s)
{
timeout 150 $B/test_qmatmul > /tmp/h_q.txt 2>&1; echo "test_qmatmul rc=$?"; grep -E "FAIL|^PASS" /tmp/h_q.txt | tail -3; grep -E "matmul_cm_h.*nbuf 1" /tmp/h_q.txt | head -3
timeout 100 $B/test_qmatmul --bench 5 > /tmp/h_qb.txt 2>&1; echo "bench rc=$?"; grep -E "matmul_cm_h" /tmp/h_qb.txt | head -40
timeout 200 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant QNEXT_MM_H_LAYOUT=512,128,256,32,64,32,1 \
  --variant QNEXT_MM_H_LAYOUT=512,256,128,32,64,32,1 --variant QNEXT_MM_H_LAYOUT=256,128,128,32,64,32,1 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== mmh90: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/mmh90.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
