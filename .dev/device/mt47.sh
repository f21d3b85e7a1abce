# .dev/device/mt47.sh — lead (run 47): moe_qmt (int8) token tiles of 24 / 32 pairs instead of 16 at 512-2048 tokens
# (20 pairs per expert at 1024: a 16-pair tile decodes most experts' weights twice), and the mt path at 2048
# (QNEXT_MOE_MT_PAIRS=48). ~150 s.
m_t0=$(date +%s)
{
L1="QNEXT_MOE_MT_LAYOUT=256,32,1,4,256:256,32,1,4,256"
L2="QNEXT_MOE_MT_LAYOUT=256,32,1,4,256:256,32,2,4,256"
L3="QNEXT_MOE_MT_LAYOUT=256,24,1,4,256:256,24,2,4,256"
L4="QNEXT_MOE_MT_LAYOUT=256,32,1,8,256:256,32,2,8,256"
timeout 260 $B/qnext prefill-ab -m $M --prompts 512,1024,2048 --reps 2 --variant - --variant "$L1" --variant "$L2" \
  --variant "$L3" --variant "$L4" --variant "QNEXT_MOE_MT_PAIRS=48" --variant "QNEXT_MOE_MT_PAIRS=48 $L1" \
  --variant "QNEXT_MOE_MT_PAIRS=48 $L2" --variant - > /tmp/m_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/m_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/m_ab.txt
echo "== mt47: $(( $(date +%s) - m_t0 )) s"
} 2>&1 | tee -a $OUT/mt47.txt
cp /tmp/m_ab.txt $OUT/ 2>/dev/null
