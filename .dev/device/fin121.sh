# .dev/device/fin121.sh — lead (run 121): this session's tree (forward_moe.c split out of forward.c, the diagnostics):
# decode, prefill and streaming figures, and in-model A/B of the decode norm-matvec layouts (QNEXT_QMVN_LAYOUT: the GDN
# in-projection's 772 groups of 256 at 93-98 registers run in 3 waves, run 119). ~300 s.
f_t0=$(date +%s)
{
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best|device memory" /tmp/h_b.txt
timeout 150 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_QMVN_LAYOUT=256,32,2,2,1024 \
  --variant QNEXT_QMVN_LAYOUT=128,8,2,2,1024 --variant QNEXT_QMVN_LAYOUT=256,16,1,2,1024 --variant QNEXT_QMVN_LAYOUT=512,32,2,2,1024 \
  --variant QNEXT_QMVN_LAYOUT=256,16,2,1,1024 --variant - > /tmp/h_mv.txt 2>&1
echo "qmvn ab rc=$?"; grep -E "rror" /tmp/h_mv.txt | head -3; grep -E "decode .* tokens" /tmp/h_mv.txt
timeout 150 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant - > /tmp/h_p.txt 2>&1
echo "prefill rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_p.txt | head -5
timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s.txt 2>&1
echo "stream 4G rc=$? $(grep -E '^best' /tmp/h_s.txt)"; grep -E "decode hit rate|IO ceiling" /tmp/h_s.txt | head -2
echo "== fin121: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/fin121.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
