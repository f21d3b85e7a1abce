# .dev/device/ps107.sh — lead (run 107): the grouped tensor-core MoE kernels' registers per layout
# (spec WG,BK,PART_OFF,CN,BT,NBUF,PSW,TS)
{
ks=""
for k in moe_q_gu_grouped_cm_q4_k moe_q_dn_grouped_cm_q4_k moe_q_dn_grouped_cm_q6_k; do
  for l in 256,32,0,16,128,1,1,2 256,32,0,16,32,1,1,1 128,32,0,16,128,2,1,4; do ks="$ks $k:$l"; done
done
$B/bench_pstats $ks 2>&1 | sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
} 2>&1 | tee -a $OUT/ps107.txt
