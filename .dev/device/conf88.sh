# .dev/device/conf88.sh — lead (run 88): the new grouped-MoE defaults (256,32,128,1,1,2; small layout below 30 pairs)
# against the previous binary, alternated; the small/big switch at 1024-2048; profile at 4096. ~330 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
for bin in qnext qnext_old qnext qnext_old; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,1536,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 2,3p
done
timeout 120 $B/qnext prefill-ab -m $M --prompts 1024,1536,2048 --reps 2 --variant - --variant QNEXT_CM_MOE_BIG_PAIRS=16 \
  --variant QNEXT_CM_MOE_BIG_PAIRS=60 --variant - > /tmp/h_ab2.txt 2>&1
echo "prefill-ab switch rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab2.txt | head -7
timeout 100 $B/qnext prefill-ab -m $M --prompts 4096 --reps 1 --variant - --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_pp.txt 2>&1
echo "profile rc=$?"; grep -vE "^qnext: info" /tmp/h_pp.txt | grep -E "profiled|moe_|matmul|gdn_chunk|attn_prefill" | head -20
echo "== conf88: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/conf88.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
