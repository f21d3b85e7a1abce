# .dev/device/probe41.sh — lead (run 41): baselines for the next session: the decode MoE kernels alone
# (test_moe_q --bench --quick, 8 layers of model-like memory) and a decode profile after a 1024-token prompt. ~120 s.
q_t0=$(date +%s)
{
QNEXT_BENCH_WARM_MS=100 timeout 60 $B/test_moe_q --bench --quick --layers 8 > /tmp/q_mq.txt 2>&1
echo "test_moe_q --bench --quick --layers 8: rc=$?"; grep -vE "^ok" /tmp/q_mq.txt | tail -12
QNEXT_PROFILE_DISPATCH=1 timeout 70 $B/qnext bench -m $M --prompt 1024 --decode 32 --reps 1 --profile > /tmp/q_dp.txt 2>&1
echo "decode profile after 1024 tokens: rc=$?"; grep -E "decode|attn|total|route_mixed|moe_q_|gdn_decode|matvec" /tmp/q_dp.txt | grep -v "0.0000  *0.0000" | head -30
echo "== probe41: $(( $(date +%s) - q_t0 )) s"
} 2>&1 | tee -a $OUT/probe41.txt
cp /tmp/q_mq.txt /tmp/q_dp.txt $OUT/ 2>/dev/null
