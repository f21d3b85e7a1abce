# .dev/device/csx118.sh — lead (run 118): matmul_cm_h's edge staging inside the X tile (CS_IN_X), which lets 256 x 128
# at BK 48 and 256 x 64 at BK 64 fit: checks, then the layouts in the model. ~150 s.
h_t0=$(date +%s)
{
timeout 100 $B/test_qmatmul > /tmp/h_tq.txt 2>&1; echo "test_qmatmul rc=$?: $(tail -1 /tmp/h_tq.txt)"; grep -E "^FAIL" /tmp/h_tq.txt | head -5
L="QNEXT_MM_H_LAYOUT"
timeout 200 $B/qnext prefill-ab -m $M --prompts 2048,4096 --reps 2 --variant - --variant $L=512,256,128,48,64,32,1 \
  --variant $L=512,128,256,48,64,32,1 --variant $L=256,256,64,64,64,32,1 --variant - > /tmp/h_v.txt 2>&1
echo "prefill-ab rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_v.txt | head -8
echo "== csx118: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/csx118.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
