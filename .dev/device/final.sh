# .dev/device/final.sh — lead (run 33): the wave-9 tree (pass 1 by (I + L)^-1 only, losers deleted, pipeline cache
# saved after session open, parallel pipeline creation): cold vs warm start, the delta rule's tests on the driver,
# the canonical prefill / decode figures, streaming at 2 / 4 / 8 GiB. ~300 s.
f_t0=$(date +%s)
{
echo "#### final: cold start (empty QNEXT_CACHE_DIR) then warm, bench --prompt 16 --decode 16 --reps 1"
for k in cold warm; do
  s=$EPOCHREALTIME
  G=1; [ $k = cold ] && G=0   # cold: the driver's own shader disk cache off too
  __GL_SHADER_DISK_CACHE=$G QNEXT_CACHE_DIR=/tmp/pc_final timeout 90 $B/qnext bench -m $M --prompt 16 --decode 16 --reps 1 -v > /tmp/f_$k.txt 2>&1
  echo "$k: rc=$? $(echo "$EPOCHREALTIME $s" | awk '{printf "%.1f", $1-$2}') s | $(grep -iE "pipeline" /tmp/f_$k.txt | head -3 | tr '\n' ' ' | cut -c1-300)"
done
echo "#### final: test_gdn --wy on the driver"
timeout 25 $B/test_gdn --wy > /tmp/f_g.txt 2>&1
echo "test_gdn --wy rc=$? $(grep -c '^ok' /tmp/f_g.txt) ok, $(grep -c '^FAIL' /tmp/f_g.txt) FAIL"; grep -E "^FAIL" /tmp/f_g.txt | head -5
echo "#### final: prefill-ab --prompts 512,1024,4096 --reps 2 --decode 128"
timeout 100 $B/qnext prefill-ab -m $M --prompts 512,1024,4096 --reps 2 --decode 128 --variant - --variant QNEXT_GDN_WY_INV=32 \
  --variant - > /tmp/f_ab.txt 2>&1
echo "rc=$?"; grep -E "decode|rror" /tmp/f_ab.txt; sed -n '/^prefill-ab table/,$p' /tmp/f_ab.txt
echo "#### final: bench --prompt 16 --decode 128 --reps 2"
timeout 40 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/f_d.txt 2>&1; echo "rc=$?"; grep -E "^best" /tmp/f_d.txt
for c in 2G 8G; do
  left=$(( 290 - ($(date +%s) - f_t0) )); [ $left -ge 30 ] || break; [ $left -gt 60 ] && left=60
  echo "#### final: streaming $c"
  timeout $left $B/qnext bench -m $M --expert-cache $c --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/f_s.txt 2>&1
  echo "rc=$?"; grep -E "^best|^streaming|^IO ceiling" /tmp/f_s.txt; cat /tmp/f_s.txt >> $OUT/final_full.txt
done
cat /tmp/f_cold.txt /tmp/f_warm.txt /tmp/f_ab.txt /tmp/f_d.txt >> $OUT/final_full.txt
echo "== final: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/final.txt
