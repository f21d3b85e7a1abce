# .dev/device/final81.sh — lead (run 81): this session's tree (the new pass 1): decode bench and its per-dispatch
# profile (for the next session's decode work; the last was run 46's), streaming at 4 GiB. ~150 s.
f_t0=$(date +%s)
{
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best|device memory" /tmp/h_b.txt
QNEXT_PROFILE_DISPATCH=1 timeout 60 $B/qnext bench -m $M --prompt 16 --decode 32 --reps 1 --profile > /tmp/h_dp.txt 2>&1
echo "decode profile rc=$?"; grep -E "^  [a-z_0-9]+ |total" /tmp/h_dp.txt | awk '$3 > 0.004 || /total/' | head -45
timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s.txt 2>&1
echo "stream 4G rc=$? $(grep -E '^best' /tmp/h_s.txt)"; grep -E "decode hit rate|IO ceiling" /tmp/h_s.txt | head -2
echo "== final81: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/final81.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
