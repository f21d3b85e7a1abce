# .dev/device/ps106.sh — lead (run 106): attn_prefill_cm's registers in each layout (PF,BC,KV2)
{
$B/bench_pstats attn_prefill_cm:256,0,32,0 attn_prefill_cm:256,1,32,0 attn_prefill_cm:256,0,32,1 \
  attn_prefill_cm:256,0,16,1 attn_prefill_cm:256,1,16,0 2>&1 | sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
} 2>&1 | tee -a $OUT/ps106.txt
