# .dev/device/svy119.sh — lead (run 119): the decode survey. (1) every decode pipeline's registers and shared memory
# (the model's own spec constants from -vv's "pipeline" lines, bench_pstats); (2) each decode stage's cost inside the
# step: prefill-ab decode with the chain off, then with one kernel family left out (QNEXT_DIAG_SKIP, timing only).
h_t0=$(date +%s)
{
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 8 --reps 1 -vv > /tmp/h_pl.txt 2>&1; echo "list rc=$?"
grep -o 'pipeline [a-z0-9_]*:[0-9,]*' /tmp/h_pl.txt | sed 's/^pipeline //' | sort -u > /tmp/h_pn.txt
echo "$(wc -l < /tmp/h_pn.txt) pipelines"
timeout 100 $B/bench_pstats $(grep -v '_cm\|matmul\|grouped\|_mt\|chunk\|prefill\|to_f16\|moe_sort\|moe_combine' /tmp/h_pn.txt) 2>&1 |
  sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
S="QNEXT_MOE_CHAIN=0 QNEXT_DIAG_SKIP"
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOE_CHAIN=0 \
  --variant "$S=moe_q_dnx" --variant "$S=moe_q_gu" --variant "$S=route_mixed" --variant "$S=matvec_norm_i8" \
  --variant "$S=matvec_i8_" --variant "$S=gdn_decode" --variant "$S=attn_decode" --variant "$S=moe_q_gu,moe_q_dnx" \
  --variant "$S=mv_parts,matvec_norm_i8,matvec_i8_,gdn_decode,attn_decode" --variant QNEXT_MOE_CHAIN=0 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -20
grep -E "decode .* tokens" /tmp/h_ab.txt | head -20
echo "== svy119: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/svy119.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
