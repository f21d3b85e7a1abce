# .dev/device/prefill.sh — helper "prefill" (wave 6), sourced by the lead's H100 run script.
# Needs $B (binary dir with qnext and the test binaries), $M (full 80B Q4_K_M gguf, in the page cache), $OUT.
# About 80-110 s. Results (summary lines) to stdout and $OUT/prefill.txt, full logs to $OUT/prefill_full.txt.
# moe_qmt.comp, a multi-token grouped matvec for the prefill MoE at few pairs per expert (off by default):
#   QNEXT_MOE_MT_PAIRS=HI or LO,HI   take it when LO <= T*K/E <= HI (512 tokens: 10 pairs per expert, 2048: 40)
#   QNEXT_MOE_MT_LAYOUT=WG,NT,NR,LK,CK:WG,NT,NR,LK,CK (gate_up : down), default now 256,16,2,4,256 for both
#     (run 22's kernel bench: 2.88 ms per layer at T 512 vs 3.33 for the tensor-core small-pairs layout; loses at 2048)
#   QNEXT_MOE_MT_PF=1   each lane loads its next weight unit before computing the current one (new)
# Run 22 (06:55): in the model 512 tokens 1919 vs 2111 with the old 128-wide default, 2048 2239 vs 3843;
# QNEXT_MATMUL_PF=1 neutral (2112 / 3845 vs 2111 / 3843).
pf_t0=$(date +%s)
# kernel bench (warmed), the real 80B MoE layer at T 256 / 512 / 1024: FMA tiles, tensor-core layouts (default and
# the small-pairs one the model takes now), moe_qmt in 9 layouts (checked against the FMA tiles: "WRONG" past 1e-4)
QNEXT_BENCH_SMALL_T=128,768 QNEXT_BENCH_MT_ONLY=1 timeout 40 $B/test_moe_qgrouped --bench-small 5 > /tmp/pf_kb.txt 2>&1
echo "bench-small rc=$?" >> /tmp/pf_kb.txt
cat /tmp/pf_kb.txt >> $OUT/prefill_full.txt
grep -E "^bench|rc=|WRONG|rror" /tmp/pf_kb.txt | cut -c1-220 | tee -a $OUT/prefill.txt
# run 24: confirm the new default (moe_qmt up to 12 pairs per expert, 0883a9f) against QNEXT_MOE_MT_PAIRS=0 (old)
timeout $(( 112 - ($(date +%s) - pf_t0) )) $B/qnext prefill-ab -m $M --prompts 64,128,192,256,384,512,768,1024 --reps 2 --decode 16 \
  --variant "-" \
  --variant "QNEXT_MOE_MT_PAIRS=0" \
  --variant "QNEXT_MOE_MT_PAIRS=16" \
  --variant "QNEXT_MOE_MT_LAYOUT=512,16,2,4,256:512,16,2,4,256" \
  --variant "QNEXT_MOE_MT_LAYOUT=256,16,2,4,256:256,16,2,2,256" \
  --variant "QNEXT_MOE_TOKEN_T=96" \
  --variant "QNEXT_MOE_TOKEN_T=0" \
  --variant "-" \
  > /tmp/pf_ab.txt 2>&1
echo "prefill-ab rc=$?" >> /tmp/pf_ab.txt
cat /tmp/pf_ab.txt >> $OUT/prefill_full.txt
grep -E "error|warning|FAIL" /tmp/pf_ab.txt | head -5 | tee -a $OUT/prefill.txt
sed -n '/^prefill-ab table/,/^prefill-ab rc/p' /tmp/pf_ab.txt | tee -a $OUT/prefill.txt
grep -q "^prefill-ab table" /tmp/pf_ab.txt || grep -E "^prefill-ab \[" /tmp/pf_ab.txt | tee -a $OUT/prefill.txt
echo "== prefill: $(( $(date +%s) - pf_t0 )) s" | tee -a $OUT/prefill.txt
