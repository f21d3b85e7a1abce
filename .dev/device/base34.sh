# .dev/device/base34.sh — lead (run 34): this session's baseline profiles: decode per dispatch, prefill per dispatch
# at 512 and 4096, the decode MoE kernel bench, streaming at 4 GiB with the route-wait breakdown. ~200 s.
b_t0=$(date +%s)
{
echo "#### base: decode per dispatch (bench --prompt 16 --decode 32 --profile)"
QNEXT_PROFILE_DISPATCH=1 timeout 60 $B/qnext bench -m $M --prompt 16 --decode 32 --reps 1 --profile > /tmp/b_dp.txt 2>&1
echo "rc=$?"; grep -vE "^qnext: info" /tmp/b_dp.txt | head -70
echo "#### base: prefill profile at 512 and 4096"
timeout 100 $B/qnext prefill-ab -m $M --prompts 512,4096 --reps 1 --variant - \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1" --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/b_pp.txt 2>&1
echo "rc=$?"; grep -vE "^qnext: info" /tmp/b_pp.txt | grep -E "^prefill-ab|total|^  [a-z_0-9]+ " | head -90
echo "#### base: test_moe_q --bench"
QNEXT_BENCH_WARM_MS=100 timeout 40 $B/test_moe_q --bench > /tmp/b_mq.txt 2>&1; echo "rc=$?"; grep -vE "^ok" /tmp/b_mq.txt | tail -30
echo "#### base: streaming 4 GiB --stats"
timeout 60 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/b_s.txt 2>&1
echo "rc=$?"; grep -vE "^qnext: info" /tmp/b_s.txt | tail -40
echo "== base: $(( $(date +%s) - b_t0 )) s"
} 2>&1 | tee -a $OUT/base.txt
cp /tmp/b_*.txt $OUT/ 2>/dev/null
