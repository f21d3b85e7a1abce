# .dev/device/mmh65.sh — lead (run 65): W_moe's shared gate / up parts on the f16 path too; prefill A/B at 128-4096
# tokens (threshold 128 / 256 / off), logits on vs off. ~200 s.
h_t0=$(date +%s)
{
timeout 220 $B/qnext prefill-ab -m $M --prompts 128,256,512,1024,4096 --reps 2 --variant - --variant QNEXT_MM_H=0 \
  --variant QNEXT_MM_H_MIN_T=128 --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
sed -n '/GPU ms per token/,/prefill-ab \[/p' /tmp/h_ab.txt | sort -k4 -g -r | head -14
. .dev/device/lib_logits_ab.sh; logits_ab QNEXT_MM_H 700
echo "== mmh65: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/mmh65.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
