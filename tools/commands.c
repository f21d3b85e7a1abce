/* commands.c — the table of subcommands. Add one line per subcommand (and its file in meson.build). */
#include "commands.h"

#include <stddef.h>

/* Each cmd_*.c defines one of these. */
int qn_cmd_devices(int argc, char **argv);
int qn_cmd_selftest(int argc, char **argv);
int qn_cmd_tokenize(int argc, char **argv);
int qn_cmd_detokenize(int argc, char **argv);
int qn_cmd_logits(int argc, char **argv);
int qn_cmd_generate(int argc, char **argv);
int qn_cmd_run_prompt(int argc, char **argv);
int qn_cmd_chat(int argc, char **argv);
int qn_cmd_synth(int argc, char **argv);
int qn_cmd_info(int argc, char **argv);
int qn_cmd_quantize(int argc, char **argv);
int qn_cmd_bench(int argc, char **argv);
int qn_cmd_prefill_ab(int argc, char **argv);

const struct qn_command qn_commands[] = {
    { "devices", "list Vulkan devices, their capabilities and board profiles", qn_cmd_devices },
    { "selftest", "run every built-in kernel against the C reference (--bench: bandwidth)", qn_cmd_selftest },
    { "tokenize", "text -> token ids (and a tokenizer speed benchmark)", qn_cmd_tokenize },
    { "detokenize", "token ids -> text", qn_cmd_detokenize },
    { "logits", "forward pass over token ids -> logits of every position (.npy)", qn_cmd_logits },
    { "generate", "greedy continuation of token ids (prints the new ids)", qn_cmd_generate },
    { "run", "answer one prompt (chat template, sampling, streamed text)", qn_cmd_run_prompt },
    { "chat", "interactive conversation that reuses the session between turns", qn_cmd_chat },
    { "synth", "write a random-weight checkpoint (hub safetensors or llama.cpp GGUF) of any size", qn_cmd_synth },
    { "info", "what a model is: config, tensors, dense vs expert bytes, bytes per token, KV/state sizes", qn_cmd_info },
    { "quantize", "convert a Hugging Face checkpoint to a llama.cpp qwen3next GGUF (q4_k_m, q8_0, f16 ...)", qn_cmd_quantize },
    { "bench", "time load, prefill and decode (tok/s, GB/s; streaming: hit rate, IO and its ceiling)", qn_cmd_bench },
    { "prefill-ab", "prefill tok/s of several environment variants, the model loaded once", qn_cmd_prefill_ab },
    { NULL, NULL, NULL },
};
