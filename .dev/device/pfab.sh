# .dev/device/pfab.sh — lead (run 37): prefill A/B of the router fusion's parts: the shared expert's gate / up on
# tensor cores (QNEXT_ROUTER_CM=1), the f32 parts' tile with BK 64 / other shapes. ~120 s.
p_t0=$(date +%s)
{
timeout 170 $B/qnext prefill-ab -m $M --prompts 512,1024,4096 --reps 2 --variant - --variant QNEXT_ROUTER_CM=1 \
  --variant QNEXT_MM_F32_TILE=64,32,32,64,4,4,1 --variant QNEXT_MM_F32_TILE=64,16,64,64,4,4,1 \
  --variant QNEXT_MM_F32_TILE=32,16,32,64,4,4,1 \
  --variant "QNEXT_ROUTER_CM=1 QNEXT_MM_F32_TILE=64,32,32,64,4,4,1" \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1 QNEXT_ROUTER_CM=1 QNEXT_MM_F32_TILE=64,32,32,64,4,4,1" --variant - > /tmp/p_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/p_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/p_ab.txt
grep -E "^  (matmul|qmatmul|total)" /tmp/p_ab.txt | head -20
echo "== pfab: $(( $(date +%s) - p_t0 )) s"
} 2>&1 | tee -a $OUT/pfab.txt
cp /tmp/p_ab.txt $OUT/ 2>/dev/null
