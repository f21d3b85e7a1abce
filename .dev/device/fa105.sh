# .dev/device/fa105.sh — lead (run 105): attn_prefill_fa 8,32,0 (loads without break) against attn_prefill_cm in the
# model, alternated; the delta rule's 64-chunk segments again on top.
h_t0=$(date +%s)
{
timeout 330 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - \
  --variant "QNEXT_ATTN_CM=fa QNEXT_ATTN_FA_LAYOUT=8,32,0" \
  --variant "QNEXT_ATTN_CM=fa QNEXT_ATTN_FA_LAYOUT=8,32,0 QNEXT_GDN_WY_SEG=64" --variant - \
  --variant "QNEXT_ATTN_CM=fa QNEXT_ATTN_FA_LAYOUT=8,32,0" \
  --variant "QNEXT_ATTN_CM=fa QNEXT_ATTN_FA_LAYOUT=8,32,0 QNEXT_GDN_WY_SEG=64" > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn|prefill attention" /tmp/h_ab.txt | sort | uniq -c | head -8; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -10
echo "== fa105: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/fa105.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
