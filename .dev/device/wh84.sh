# .dev/device/wh84.sh — lead (run 84): the QN_WH twins at TS 2 (no decode in the k loop: fewer invocations may do),
# in the model at 4096 tokens, and its profile. ~200 s.
h_t0=$(date +%s)
{
timeout 200 $B/qnext prefill-ab -m $M --prompts 4096 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE=128,32,128,2,1,2 \
  --variant QNEXT_MOE_WH=0 --variant QNEXT_CM_MOE_TILE=128,32,128,1,1,2 --variant QNEXT_CM_MOE_TILE=128,32,128,2,1,2 > /tmp/h_ab4.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab4.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab4.txt | head -8
QNEXT_CM_MOE_TILE=128,32,128,2,1,2 timeout 100 $B/qnext prefill-ab -m $M --prompts 4096 --reps 1 --variant - --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_pp4.txt 2>&1
echo "profile rc=$?"; grep -vE "^qnext: info" /tmp/h_pp4.txt | grep -E "moe_" | head -12
echo "== wh84: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wh84.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
