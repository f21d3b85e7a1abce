# .dev/device/wy79.sh — lead (run 79): gdn_chunk_wy_inv's M as vec4s (16-byte loads of T rows / B columns) against
# run 77's binary; the session's final prefill figures. ~250 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_gdn > /tmp/h_g.txt 2>&1; echo "test_gdn rc=$?"; grep -E "FAIL|^PASS" /tmp/h_g.txt | tail -3
timeout 60 $B/test_gdn --bench-wy 4096 > /tmp/h_w.txt 2>&1; echo "bench-wy rc=$?"; grep -E "^bench" /tmp/h_w.txt | head -1
for bin in qnext qnext_old qnext; do
  timeout 110 $B/$bin prefill-ab -m $M --prompts 16,128,512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
echo "== wy79: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy79.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
