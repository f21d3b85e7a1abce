# .dev/device/prefill.sh — helper "prefill" (wave 6), sourced by the lead's H100 run script.
# Needs $B (binary dir with qnext and the test binaries), $M (full 80B Q4_K_M gguf, in the page cache), $OUT.
# About 60-110 s. Results (summary lines) to stdout and $OUT/prefill.txt, full logs to $OUT/prefill_full.txt.
# New: moe_qmt.comp, a multi-token grouped matvec for the prefill MoE at few pairs per expert (off by default):
#   QNEXT_MOE_MT_PAIRS=HI or LO,HI   take it when LO <= T*K/E <= HI (512 tokens: 10 pairs per expert, 2048: 40)
#   QNEXT_MOE_MT_LAYOUT=WG,NT,NR,LK,CK:WG,NT,NR,LK,CK (gate_up : down), default 128,16,2,4,256 for both
#     (NT token slots per pass, NR rows per lane group, LK lanes per row, CK staged input elements per chunk)
#   QNEXT_MATMUL_PF=1: matmul.comp (the W_moe router's f32 parts in prefill) prefetches the next k-step's blocks into
#     registers while it computes, loads coalesced along k (bit-identical sums; off by default)
# prefill-ab, one model load, each prompt one call, best of 2, + 16 decode steps; baseline at both ends.
pf_t0=$(date +%s)
# kernel bench (warmed), the real 80B MoE layer at T 512 / 2048: FMA tiles, tensor-core layouts (default and the
# small-pairs one the model takes now), moe_qmt in 6 layouts (checked against the FMA tiles: "WRONG" past 1e-4)
QNEXT_BENCH_SMALL_T=512,2048 QNEXT_BENCH_MT_ONLY=1 timeout 40 $B/test_moe_qgrouped --bench-small 5 > /tmp/pf_kb.txt 2>&1
echo "bench-small rc=$?" >> /tmp/pf_kb.txt
cat /tmp/pf_kb.txt >> $OUT/prefill_full.txt
grep -E "^bench|rc=|WRONG|rror" /tmp/pf_kb.txt | cut -c1-220 | tee -a $OUT/prefill.txt
MT="QNEXT_MOE_MT_PAIRS=64"
timeout $(( 110 - ($(date +%s) - pf_t0) )) $B/qnext prefill-ab -m $M --prompts 128,512,2048 --reps 2 --decode 16 \
  --variant "-" \
  --variant "$MT" \
  --variant "$MT QNEXT_MOE_MT_LAYOUT=64,16,1,1,256:64,16,1,1,256" \
  --variant "$MT QNEXT_MOE_MT_LAYOUT=128,16,1,8,256:128,16,1,8,256" \
  --variant "$MT QNEXT_MOE_MT_LAYOUT=128,32,2,4,256:128,32,2,4,256" \
  --variant "QNEXT_MATMUL_PF=1" \
  --variant "$MT QNEXT_MATMUL_PF=1" \
  --variant "$MT QNEXT_MOE_TOKEN_T=0" \
  --variant "PROFILE=512 $MT QNEXT_PROFILE_DISPATCH=1" \
  --variant "-" \
  > /tmp/pf_ab.txt 2>&1
echo "prefill-ab rc=$?" >> /tmp/pf_ab.txt
cat /tmp/pf_ab.txt >> $OUT/prefill_full.txt
grep -E "^prefill-ab \[|error|warning|FAIL|^  [a-z_]" /tmp/pf_ab.txt | tee -a $OUT/prefill.txt
sed -n '/^prefill-ab table/,/^prefill-ab rc/p' /tmp/pf_ab.txt | tee -a $OUT/prefill.txt
echo "== prefill: $(( $(date +%s) - pf_t0 )) s" | tee -a $OUT/prefill.txt
