# .dev/device/diag55.sh — lead (run 55): what the decode step's stage boundaries cost (QNEXT_DIAG_NO_BARRIER drops
# barriers: timing only, wrong tokens), the attention decode kernels at short contexts (test_attn --bench), the
# attention fold in the model. ~150 s.
d_t0=$(date +%s)
{
echo "#### diag55: test_attn --bench (decode step rows)"
timeout 60 $B/test_attn --bench > /tmp/d_at.txt 2>&1; echo "rc=$?"; grep -E "^bench" /tmp/d_at.txt
echo "#### diag55: decode without barriers (prefill-ab --prompts 16 --decode 128)"
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - \
  --variant QNEXT_DIAG_NO_BARRIER=m --variant QNEXT_DIAG_NO_BARRIER=rm --variant QNEXT_DIAG_NO_BARRIER=all \
  --variant QNEXT_ATTN_FOLD=0 --variant - > /tmp/d_ab.txt 2>&1
echo "rc=$?"; grep -E "rror" /tmp/d_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/d_ab.txt
echo "== diag55: $(( $(date +%s) - d_t0 )) s"
} 2>&1 | tee -a $OUT/diag55.txt
cp /tmp/d_*.txt $OUT/ 2>/dev/null
