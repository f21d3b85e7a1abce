# .dev/device/wy77.sh — lead (run 77): gdn_chunk_wy_inv's loads issued ahead (k / q tiles, gates, R blocks), against
# run 75's binary; pass 2 layout and pass 1 CB on the new pass 1. ~300 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_gdn > /tmp/h_g.txt 2>&1; echo "test_gdn rc=$?"; grep -E "FAIL|^PASS" /tmp/h_g.txt | tail -3
timeout 60 $B/test_gdn --bench-wy 4096 > /tmp/h_w.txt 2>&1; echo "bench-wy rc=$?"; grep -E "^bench" /tmp/h_w.txt | head -3
for bin in qnext qnext_old qnext; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
timeout 150 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_LAYOUT=256,16,1 \
  --variant QNEXT_GDN_WY_INV=32 --variant - > /tmp/h_ab2.txt 2>&1
echo "prefill-ab layouts rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab2.txt | head -7
echo "== wy77: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy77.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
