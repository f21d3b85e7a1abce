# helper decode (wave 6): decode fusions, each behind an env switch (default off). Sourced by the lead's script:
# $B binaries, $M the 80B Q4_K_M file, $OUT results. Under ~110 s.
#   QNEXT_GDN_FUSE=1: GDN conv folded into the delta rule (gdn_decode.comp), =2: the gated norm folded in too
#   QNEXT_MV_PARTS=1: the mixed-type in projections (GDN in_proj: Q4_K/Q6_K + Q4_K + f32) in one mv_parts dispatch;
#   QNEXT_MV_PARTS_LAYOUT=WG,FROWS,QROWS,FUNROLL,QUNROLL (default 512,8,16,8,2), QNEXT_GDN_FUSE_LAYOUT=WG,BV (128,16)
#   QNEXT_ATTN_FOLD=1: attn_prep's work inside the attention decode split pass (attn_decode_prep)
d_t0=$(date +%s)
{
timeout 25 $B/test_gdn > /tmp/d_gdn.txt 2>&1; echo "test_gdn rc=$? $(grep -c '^ok' /tmp/d_gdn.txt) ok, $(grep -c '^FAIL' /tmp/d_gdn.txt) FAIL"
timeout 20 $B/test_mv_parts > /tmp/d_mvp.txt 2>&1; echo "test_mv_parts rc=$? $(grep -c '^ok' /tmp/d_mvp.txt) ok, $(grep -c '^FAIL' /tmp/d_mvp.txt) FAIL"
timeout 20 $B/test_attn > /tmp/d_attn.txt 2>&1; echo "test_attn rc=$? $(grep -c '^ok' /tmp/d_attn.txt) ok, $(grep -c '^FAIL' /tmp/d_attn.txt) FAIL"
grep -hE "^FAIL" /tmp/d_gdn.txt /tmp/d_mvp.txt /tmp/d_attn.txt | head -6
F="QNEXT_GDN_FUSE=2 QNEXT_MV_PARTS=1 QNEXT_ATTN_FOLD=1"
timeout 90 $B/qnext prefill-ab -m $M --prompts 16 --reps 1 --decode 128 --variant - --variant QNEXT_GDN_FUSE=2 \
  --variant QNEXT_MV_PARTS=1 --variant QNEXT_ATTN_FOLD=1 --variant "$F" --variant "$F QNEXT_MV_PARTS_LAYOUT=256,8,16,8,2" \
  --variant "$F QNEXT_MV_PARTS_LAYOUT=1024,8,32,8,2" --variant "$F QNEXT_MV_PARTS_LAYOUT=512,8,8,8,1" \
  --variant "$F QNEXT_GDN_FUSE_LAYOUT=256,16" --variant "$F QNEXT_GDN_FUSE_LAYOUT=256,32" --variant - --variant "$F" \
  > /tmp/d_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "decode|error|FAILED|loaded" /tmp/d_ab.txt | head -20
cat /tmp/d_gdn.txt /tmp/d_mvp.txt /tmp/d_attn.txt /tmp/d_ab.txt > $OUT/decode_full.txt
if [ $(( $(date +%s) - d_t0 )) -lt 75 ]; then
  env $F QNEXT_PROFILE_DISPATCH=1 timeout 30 $B/qnext bench -m $M --prompt 16 --decode 32 --reps 1 --profile > /tmp/d_prof.txt 2>&1
  echo "profile rc=$?"; grep -E "gdn|mv_parts|attn|total|tokens/s|per token" /tmp/d_prof.txt | head -12; cat /tmp/d_prof.txt >> $OUT/decode_full.txt
fi
echo "== decode fragment $(( $(date +%s) - d_t0 )) s"
} 2>&1 | tee -a $OUT/decode.txt
