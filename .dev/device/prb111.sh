# .dev/device/prb111.sh — lead (run 111): the grouped tensor-core MoE's k loop part by part (probe binaries of
# .dev/probe_moe.sh, timing only) at T 4096 in the default layout; this tree's prefill (board gdn_wy_seg 64). ~200 s.
h_t0=$(date +%s)
{
for p in "" _p1 _p2 _p3 _p4 _p5 ""; do
  QNEXT_BENCH_T=4096 timeout 60 $B/test_moe_qgrouped$p --bench-cm 5 256,32,128,1,1,2 > /tmp/h_pb$p.txt 2>&1
  echo "probe '$p' rc=$?: $(grep -E '^bench cm-moe 256' /tmp/h_pb$p.txt)"
done
for i in 1 2; do
  timeout 100 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab$i.txt 2>&1
  echo "prefill-ab rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab$i.txt | sed -n 2,3p
done
echo "== prb111: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/prb111.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
