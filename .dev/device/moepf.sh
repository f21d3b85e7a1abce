# .dev/device/moepf.sh — helper "moepf" (wave 8), sourced by the lead's H100 run script ($B, $M, $OUT). ~90 s.
# moe_qmt.comp's int8 twins (QN_I8: x / act quantized per 32 in the staging, packed 4x8-bit OpSDot per unit and token
# instead of 32 fmas), env QNEXT_MOE_MT_I8=1; taken where moe_qmt is (QNEXT_MOE_MT_PAIRS, default <= 12 pairs per
# expert: the 512-token prompt). QNEXT_MM_F32_TILE=WG,BM,BN,BK,TM,TN[,PF]: the f32 parts of mixed-type fusions in
# prefill (router 512 rows, shared-expert gate 1, GDN ba 64) in a smaller matmul_f32 tile (more workgroups). Summary to stdout and $OUT/moepf.txt, full logs to $OUT/moepf_full.txt.
mp_t0=$(date +%s)
# 1. decisive in-model A/B first (baseline at both ends); 1024 tokens = 20 pairs per expert: PAIRS=24 lets moe_qmt take it
timeout 66 $B/qnext prefill-ab -m $M --prompts 256,512,1024 --reps 1 --decode 16 \
  --variant "-" \
  --variant "QNEXT_MOE_MT_I8=1" \
  --variant "QNEXT_MOE_MT_I8=1 QNEXT_MOE_MT_PAIRS=24" \
  --variant "QNEXT_MOE_MT_I8=1 QNEXT_MOE_MT_LAYOUT=256,16,2,4,1024:256,16,2,4,512" \
  --variant "QNEXT_MOE_MT_I8=1 QNEXT_MOE_MT_PF=1 QNEXT_MOE_MT_LAYOUT=256,16,2,4,1024:256,16,2,4,512" \
  --variant "QNEXT_MM_F32_TILE=64,32,32,32,4,4,1" \
  --variant "QNEXT_MOE_MT_I8=1 QNEXT_MM_F32_TILE=64,32,32,32,4,4,1" \
  --variant "PROFILE=512 QNEXT_PROFILE_DISPATCH=1 QNEXT_MOE_MT_I8=1" \
  --variant "-" > /tmp/mp_ab.txt 2>&1
echo "prefill-ab rc=$?" >> /tmp/mp_ab.txt
cat /tmp/mp_ab.txt >> $OUT/moepf_full.txt
grep -E "error|warning|FAIL" /tmp/mp_ab.txt | head -5 | tee -a $OUT/moepf.txt
grep -E "moe_q_|total" /tmp/mp_ab.txt | head -12 | tee -a $OUT/moepf.txt
sed -n '/^prefill-ab table/,/^prefill-ab rc/p' /tmp/mp_ab.txt | tee -a $OUT/moepf.txt
grep -q "^prefill-ab table" /tmp/mp_ab.txt || grep -E "^prefill-ab \[|rc=" /tmp/mp_ab.txt | tee -a $OUT/moepf.txt
# 2. kernel bench (warmed), the real 80B MoE layer at T 512 / 1024: FMA tiles, tensor-core layouts, moe_qmt f32 and
#    int8 in 16 layouts each (CK 1024 / 2048: longer runs between the staging barriers; f32 rows past the shared
#    memory left out) (checked against the FMA tiles: f32 "WRONG" past 1e-4, int8 past 3e-2)
QNEXT_BENCH_WARM_MS=150 QNEXT_BENCH_SMALL_T=512,1024 QNEXT_BENCH_MT_ONLY=1 \
  timeout $(( 98 - ($(date +%s) - mp_t0) )) $B/test_moe_qgrouped --bench-small 5 > /tmp/mp_kb.txt 2>&1
echo "bench-small rc=$?" >> /tmp/mp_kb.txt
cat /tmp/mp_kb.txt >> $OUT/moepf_full.txt
grep -E "^bench|rc=|WRONG|rror" /tmp/mp_kb.txt | cut -c1-200 | tee -a $OUT/moepf.txt
echo "== moepf: $(( $(date +%s) - mp_t0 )) s" | tee -a $OUT/moepf.txt
