# .dev/device/fin116.sh — lead (run 116): the final tree (68d0d9d: test_moe_qgrouped's DOWN_RUN) on the driver; prefill
# once more with two layout variants for information. ~200 s.
h_t0=$(date +%s)
{
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?: $(tail -1 /tmp/h_t.txt)"; grep -c "^ok   down split" /tmp/h_t.txt
timeout 200 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant QNEXT_ATTN_CM_LAYOUT=1,32,0 \
  --variant QNEXT_GDN_WY_LAYOUT=512,32,1 --variant - > /tmp/h_v.txt 2>&1
echo "prefill-ab rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_v.txt | head -7
echo "== fin116: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/fin116.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
