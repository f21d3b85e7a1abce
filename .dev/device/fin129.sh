# .dev/device/fin129.sh — lead (run 129): the final tree (3a8a442): decode A/B against QNEXT_QMVN_LAYOUT=256,32,1,1
# (run 128: 240.2 vs 238.2-238.5 once), the bench, prefill, streaming at 4 GiB and the host tier. ~250 s.
f_t0=$(date +%s)
{
N=QNEXT_QMVN_LAYOUT=256,32,1,1,1024
timeout 200 $B/qnext prefill-ab -m $M --prompts 16,128 --decode 128 --reps 1 --variant - --variant $N --variant - --variant $N \
  --variant - --variant $N > /tmp/h_l.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_l.txt | head -3; grep -E "decode .* tokens" /tmp/h_l.txt
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/h_b.txt
timeout 150 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant - > /tmp/h_p.txt 2>&1
echo "prefill rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_p.txt | head -5
timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s.txt 2>&1
echo "stream 4G rc=$? $(grep -E '^best' /tmp/h_s.txt)"; grep -E "decode hit rate|IO ceiling|device memory" /tmp/h_s.txt | head -3
timeout 60 $B/qnext bench -m $M --experts host --prompt 16 --decode 32 --reps 1 > /tmp/h_h.txt 2>&1; echo "host tier rc=$? $(grep -E '^best' /tmp/h_h.txt)"
echo "== fin129: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/fin129.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
