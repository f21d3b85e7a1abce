# .dev/device/final69.sh — lead (run 69): this session's final tree (the f16 path, the MoE double-buffered): decode bench, prefill at 16-4096 tokens, streaming
# at 4 GiB, the host tier (the chain is on in decode; prefill and streaming should be unchanged). ~200 s.
f_t0=$(date +%s)
{
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best|device memory" /tmp/h_b.txt
timeout 220 $B/qnext prefill-ab -m $M --prompts 16,128,512,1024,2048,4096 --reps 2 --variant - --variant QNEXT_MM_H=0 > /tmp/h_p.txt 2>&1; echo "prefill rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_p.txt
timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s.txt 2>&1
echo "stream 4G rc=$? $(grep -E '^best' /tmp/h_s.txt)"; grep -E "decode hit rate|IO ceiling" /tmp/h_s.txt | head -2
timeout 120 $B/qnext bench -m $M --experts host --prompt 16 --decode 64 --reps 2 > /tmp/h_h.txt 2>&1; echo "host tier rc=$? $(grep -E '^best' /tmp/h_h.txt)"
echo "== final69: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/final69.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
