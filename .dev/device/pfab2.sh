# .dev/device/pfab2.sh — lead (run 38): the tensor-core tile of the small prefill parts (shared expert gate / up,
# GDN ba, k / v: 8-64 workgroups at 512 tokens): profiles at 512 with QNEXT_CM_TILE variants (BK 64 / 128, 32-wide
# tiles; the 128 x 128 tile stays for the big calls via QNEXT_CM_BIG). ~100 s.
p_t0=$(date +%s)
{
B128=QNEXT_CM_BIG=128,128,32,1
timeout 170 $B/qnext prefill-ab -m $M --prompts 512,4096 --reps 2 --variant - \
  --variant "QNEXT_CM_TILE=64,64,64,1 $B128" --variant "QNEXT_CM_TILE=32,32,64,1 $B128" \
  --variant "QNEXT_CM_TILE=32,64,64,1 $B128" --variant "QNEXT_CM_TILE=64,64,128,1 $B128" \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1" \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1 QNEXT_CM_TILE=32,32,64,1 $B128" \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1 QNEXT_CM_TILE=64,64,128,1 $B128" --variant - > /tmp/p2_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/p2_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/p2_ab.txt
grep -E "^prefill-ab \[PROFILE|^  (matmul|qmatmul|total)" /tmp/p2_ab.txt | head -40
echo "== pfab2: $(( $(date +%s) - p_t0 )) s"
} 2>&1 | tee -a $OUT/pfab2.txt
cp /tmp/p2_ab.txt $OUT/ 2>/dev/null
