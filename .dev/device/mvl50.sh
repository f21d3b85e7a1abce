# .dev/device/mvl50.sh — lead (run 50): the int8 decode matvec layouts (they copy the qmatvec layouts, spec 0-3):
# out projections (QNEXT_QMV_LAYOUT, 2048 x 4096 Q4_K, 128 workgroups by default) and in-projection parts
# (QNEXT_QMVN_LAYOUT) with more, smaller workgroups; plus this tree's headline figures. ~200 s.
l_t0=$(date +%s)
{
echo "#### mvl50: decode A/B (prefill-ab --prompts 16 --decode 128)"
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - \
  --variant "QNEXT_QMV_LAYOUT=128,8,1,4,0" --variant "QNEXT_QMV_LAYOUT=128,4,1,4,0" \
  --variant "QNEXT_QMV_LAYOUT=256,8,2,2,0" --variant "QNEXT_QMV_LAYOUT=128,8,2,2,0" \
  --variant "QNEXT_QMVN_LAYOUT=128,16,1,4,0" --variant "QNEXT_QMVN_LAYOUT=128,8,1,4,0" \
  --variant "QNEXT_QMV_LAYOUT=128,8,1,4,0 QNEXT_QMVN_LAYOUT=128,16,1,4,0" --variant - > /tmp/l_ab.txt 2>&1
echo "rc=$?"; grep -E "rror|warn" /tmp/l_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/l_ab.txt
echo "#### mvl50: headline figures"
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/l_b.txt 2>&1; echo "rc=$?"; grep -E "^model|^best" /tmp/l_b.txt
timeout 100 $B/qnext prefill-ab -m $M --prompts 512,1024,4096 --reps 2 --variant - > /tmp/l_p.txt 2>&1; echo "rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/l_p.txt
for c in 2G 4G 8G; do
  timeout 70 $B/qnext bench -m $M --expert-cache $c --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/l_s$c.txt 2>&1
  echo "stream $c rc=$? $(grep -E '^best' /tmp/l_s$c.txt)"; grep -E "decode hit rate" /tmp/l_s$c.txt | head -1
done
echo "== mvl50: $(( $(date +%s) - l_t0 )) s"
} 2>&1 | tee -a $OUT/mvl50.txt
cp /tmp/l_*.txt $OUT/ 2>/dev/null
