# .dev/device/fin132.sh — lead (run 132): the final tree (the split down at 256 x 64 by default): kernel test, decode
# bench, prefill, streaming at 4 GiB, the host tier, and each stage's cost inside the step again (chain off). ~250 s.
f_t0=$(date +%s)
{
timeout 100 $B/test_moe_q > /tmp/h_t.txt 2>&1; echo "test_moe_q rc=$?: $(tail -1 /tmp/h_t.txt)"; grep -E "^FAIL" /tmp/h_t.txt | head -3
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/h_b.txt
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b2.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/h_b2.txt
timeout 150 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant - > /tmp/h_p.txt 2>&1
echo "prefill rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_p.txt | head -5
timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s.txt 2>&1
echo "stream 4G rc=$? $(grep -E '^best' /tmp/h_s.txt)"; grep -E "decode hit rate|IO ceiling|device memory" /tmp/h_s.txt | head -3
timeout 60 $B/qnext bench -m $M --experts host --prompt 16 --decode 32 --reps 1 > /tmp/h_h.txt 2>&1; echo "host tier rc=$? $(grep -E '^best' /tmp/h_h.txt)"
S="QNEXT_MOE_CHAIN=0 QNEXT_DIAG_SKIP"
timeout 150 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant QNEXT_MOE_CHAIN=0 \
  --variant "$S=moe_q_dnx" --variant "$S=moe_q_gu" --variant "$S=route_mixed" --variant "$S=matvec_norm_i8" \
  --variant "$S=matvec_i8_" --variant "$S=gdn_decode" --variant "$S=attn_decode" --variant QNEXT_MOE_CHAIN=0 > /tmp/h_ab.txt 2>&1
echo "skip rc=$?"; grep -E "decode .* tokens" /tmp/h_ab.txt
echo "== fin132: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/fin132.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
