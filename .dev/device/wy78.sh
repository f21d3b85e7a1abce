# .dev/device/wy78.sh — lead (run 78): the new pass 1 phase by phase (probe binaries), the prefill profile at 4096,
# pass 2 at 512 / 1024 invocations. ~300 s.
h_t0=$(date +%s)
{
for p in "" _p1 _p2; do
  [ -x $B/test_gdn$p ] || continue
  timeout 60 $B/test_gdn$p --bench-wy 4096 > /tmp/h_w$p.txt 2>&1; echo "test_gdn$p --bench-wy rc=$?"; grep -E "^bench" /tmp/h_w$p.txt | head -1
done
timeout 150 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_LAYOUT=512,32,1 \
  --variant QNEXT_GDN_WY_LAYOUT=1024,32,1 --variant - > /tmp/h_ab2.txt 2>&1
echo "prefill-ab pass-2 layouts rc=$?"; grep -E "rror|warn" /tmp/h_ab2.txt | head -3; sed -n '/^prefill-ab table/,$p' /tmp/h_ab2.txt | head -7
timeout 100 $B/qnext prefill-ab -m $M --prompts 4096 --reps 1 --variant - --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_pp.txt 2>&1
echo "profile rc=$?"; grep -vE "^qnext: info" /tmp/h_pp.txt | grep -E "^prefill-ab|total|^  [a-z_0-9]+ " | head -60
echo "== wy78: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy78.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
