# .dev/device/moexh66.sh — lead (run 66): the grouped gate_up reading x in f16 (QN_X_F16; QNEXT_MOE_XH): the twin check
# on the driver (test_moe_qgrouped), prefill A/B, logits on vs off. ~250 s.
h_t0=$(date +%s)
{
timeout 120 $B/test_moe_qgrouped > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped rc=$?"; grep -E "FAIL|^PASS|x in f16" /tmp/h_t.txt | head -12
timeout 200 $B/qnext prefill-ab -m $M --prompts 256,512,1024,4096 --reps 2 --variant - --variant QNEXT_MOE_XH=0 \
  --variant QNEXT_MM_H=0 --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -7
sed -n '/GPU ms per token/,/prefill-ab \[/p' /tmp/h_ab.txt | sort -k4 -g -r | head -8
. .dev/device/lib_logits_ab.sh; logits_ab QNEXT_MM_H 700
echo "== moexh66: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/moexh66.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
