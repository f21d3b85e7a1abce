# .dev/device/moexh67.sh — lead (run 67): the grouped down reading act in f16 too (QNEXT_MOE_XH=1: gate_up's x only):
# twin checks on the driver, prefill A/B, logits on vs off. ~250 s.
h_t0=$(date +%s)
{
timeout 100 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped rc=$?"; grep -E "FAIL|^PASS|in f16" /tmp/h_t.txt | grep -E "FAIL|PASS|Q4_K|Q6_K" | head -12
timeout 200 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant QNEXT_MOE_XH=1 \
  --variant QNEXT_MOE_XH=0 --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -7
sed -n '/GPU ms per token/,/prefill-ab \[/p' /tmp/h_ab.txt | sort -k4 -g -r | head -10
. .dev/device/lib_logits_ab.sh; logits_ab QNEXT_MM_H 3500 --last
echo "== moexh67: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/moexh67.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
