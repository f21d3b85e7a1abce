/* chat.h — the chat template of Qwen3-Next-80B-A3B-Instruct (ChatML, same as Qwen3-*-Instruct-2507):
 * messages in, prompt text out. The text is then encoded with qn_tok_encode(), which matches
 * <|im_start|>, <|im_end|>, <tool_call> ... literally.
 *
 *     qn_chat_msg m[] = { { QN_CHAT_SYSTEM, "You are terse." }, { QN_CHAT_USER, "Hi" } };
 *     char *prompt;
 *     qn_chat_render(m, 2, NULL, &prompt);
 *     // "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
 *
 * Output is byte-for-byte what transformers' apply_chat_template(messages, tools=..., tokenize=False,
 * add_generation_prompt=...) gives with the model's template: no default system prompt, no <think>
 * block, tools listed in the system turn as JSON (re-serialised like Python's json.dumps: ", " and
 * ": " separators, keys in the given order, non-ASCII kept), tool calls as <tool_call> blocks in the
 * assistant turn, consecutive tool results grouped in one user turn of <tool_response> blocks.
 * Generation stops at <|im_end|> (151645) or <|endoftext|> (151643). */
#ifndef QN_CHAT_H
#define QN_CHAT_H

#include <stdbool.h>
#include <stdint.h>

#include "tokenizer.h"

#define QN_CHAT_IM_END 151645     /* <|im_end|>: end of a turn */
#define QN_CHAT_ENDOFTEXT 151643  /* <|endoftext|> */

enum qn_chat_role { QN_CHAT_SYSTEM, QN_CHAT_USER, QN_CHAT_ASSISTANT, QN_CHAT_TOOL };

typedef struct qn_chat_tool_call {
    const char *name;
    const char *arguments;    /* JSON text of the arguments object ("{}" when NULL) */
    bool arguments_verbatim;  /* true: insert the text as given (the template's "arguments is a string"
                                 case, e.g. an OpenAI request passed through unparsed); false: parse and
                                 re-serialise it like json.dumps (what HF and vLLM do with a dict) */
} qn_chat_tool_call;

typedef struct qn_chat_msg {
    enum qn_chat_role role;
    const char *content;                  /* NULL renders as "" */
    const qn_chat_tool_call *tool_calls;  /* assistant turns only */
    int n_tool_calls;
} qn_chat_msg;

typedef struct qn_chat_opts {
    bool add_generation_prompt;  /* end with "<|im_start|>assistant\n" (default true) */
    const char *const *tools;    /* JSON text of each tool, e.g. {"type": "function", "function": {...}} */
    int n_tools;
} qn_chat_opts;

qn_chat_opts qn_chat_default_opts(void);

/* Render `n` messages (opts NULL = defaults) into a malloc'd NUL-terminated string. Errors (-EINVAL):
 * a tool or arguments text that is not valid JSON (with the byte offset), invalid UTF-8, a bad role. */
int qn_chat_render(const qn_chat_msg *msgs, int n, const qn_chat_opts *opts, char **out);

/* "system" / "user" / "assistant" / "tool" <-> role. */
int qn_chat_role_parse(const char *s, enum qn_chat_role *role);
const char *qn_chat_role_name(enum qn_chat_role role);

/* JSON text -> the text Python's json.dumps(json.loads(text), ensure_ascii=False) gives (malloc'd). */
int qn_chat_json_dump(const char *json, char **out);

/* The stop ids of the chat format looked up in `tok` (<|im_end|>, <|endoftext|>); returns how many
 * were found (at most 2). */
int qn_chat_stop_ids(const qn_tok *tok, int32_t ids[2]);

#endif
