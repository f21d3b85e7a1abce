# .dev/device/seg100.sh — lead (run 100): the two-pass delta rule's segment length and pass-2 layout in the model.
h_t0=$(date +%s)
{
timeout 300 $B/qnext prefill-ab -m $M --prompts 2048,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_SEG=32 \
  --variant QNEXT_GDN_WY_SEG=64 --variant QNEXT_GDN_WY_LAYOUT=256,16 --variant QNEXT_GDN_WY_SEG=8 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -9
echo "== seg100: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/seg100.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
