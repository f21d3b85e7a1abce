# .dev/device/confirm.sh — lead (run 32): the new defaults (int8 moe_qmt up to 24 pairs per expert, the f32 parts'
# tile, I8_STAGE4, the route bound) against the old ones, the int8 pairs bound at 1024-4096, pass 1 by (I+L)^-1;
# then the profile at 512 and one streaming row. ~200 s.
c_t0=$(date +%s)
{
echo "#### confirm: prefill-ab --reps 2 --decode 64"
timeout 150 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --decode 64 --variant - \
  --variant "QNEXT_MOE_MT_I8=0 QNEXT_MM_F32_TILE=0 QNEXT_I8_STAGE4=0" --variant QNEXT_MOE_MT_PAIRS=40 \
  --variant QNEXT_MOE_MT_PAIRS=64 --variant QNEXT_GDN_WY_INV=1 --variant "QNEXT_GDN_WY_INV=1 QNEXT_GDN_WY_SEG=64" \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1" --variant - > /tmp/c_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "error|warning|FAIL|decode" /tmp/c_ab.txt | head -12
sed -n '/^prefill-ab table/,$p' /tmp/c_ab.txt
grep -q "^prefill-ab table" /tmp/c_ab.txt || grep -E "^prefill-ab \[" /tmp/c_ab.txt
grep -E "^  [a-z_0-9]+ [0-9]+x[0-9]+ +0.0000 +0.0[0-9]*[1-9]" /tmp/c_ab.txt | sort -k4 -r -n | head -14
cp /tmp/c_ab.txt $OUT/confirm_full.txt
echo "#### confirm: streaming 4 GiB"
timeout 60 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/c_s.txt 2>&1
echo "rc=$?"; grep -E "^best|^streaming|^IO ceiling|^decode per token" /tmp/c_s.txt; cat /tmp/c_s.txt >> $OUT/confirm_full.txt
echo "== confirm: $(( $(date +%s) - c_t0 )) s"
} 2>&1 | tee -a $OUT/confirm.txt
