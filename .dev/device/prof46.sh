# .dev/device/prof46.sh — lead (run 46): fresh per-dispatch profiles of decode and of a 1024-token prefill, to pick
# this session's lever. ~70 s.
{
echo "#### prof46: decode per dispatch (bench --prompt 16 --decode 32 --profile)"
QNEXT_PROFILE_DISPATCH=1 timeout 60 $B/qnext bench -m $M --prompt 16 --decode 32 --reps 1 --profile > /tmp/p_dp.txt 2>&1
echo "rc=$?"; grep -vE "^qnext: info" /tmp/p_dp.txt | head -80
echo "#### prof46: prefill profile at 1024"
timeout 60 $B/qnext prefill-ab -m $M --prompts 1024 --reps 1 --variant - \
  --variant "PROFILE=1024 QNEXT_PROFILE_DISPATCH=1" > /tmp/p_pp.txt 2>&1
echo "rc=$?"; grep -vE "^qnext: info" /tmp/p_pp.txt | grep -E "^prefill-ab|total|^  [a-z_0-9]+ " | head -60
} 2>&1 | tee -a $OUT/prof46.txt
cp /tmp/p_*.txt $OUT/ 2>/dev/null
