/* test_chat_cases.h — chat template cases: messages and the exact text the model's chat_template
 * (Qwen3-*-Instruct-2507 / Qwen3-Next-Instruct) renders for them with jinja2 the way transformers runs it
 * (trim_blocks, lstrip_blocks, tojson = json.dumps(ensure_ascii=False)). Tool JSON is given here in
 * other spellings (indented, \u escapes, 2.5E+3, -0) that json.loads maps to the same values. */
/* clang-format off */
static const qn_chat_tool_call tc_7_2[] = {
    { "get_weather",
      "{\"city\":\"Paris\",\"unit\":\"celsius\",\"days\":2,\"x\":1.0}", false },
    { "get_weather",
      "{\"city\":\"\346\235\261\344\272\254\",\"note\":\"line1\\nline2 \\\"q\\\"\"}", false }
};
static const qn_chat_tool_call tc_7_5[] = {
    { "search",
      "{\"q\":\"news\"}", false }
};
static const qn_chat_tool_call tc_8_1[] = {
    { "search", "{\"q\":\"x\",  \"n\":1.50}", true }
};

/* the weather tool as a request would send it (indented, \u escapes, 2.5E+3, ...): two cases use it */
#define WEATHER_TOOL \
    "{\n \"type\": \"function\",\n \"function\": {\n" \
    "  \"name\": \"get_weather\",\n  \"description\": \"Current weather in a city \\u2014 \\u00b" \
    "0C, \\u00abquoted\\u00bb \\\"text\\\" and a back\\\\slash\\ttab\\u0001ctl\",\n" \
    "  \"parameters\": {\n   \"type\": \"object\",\n" \
    "   \"properties\": {\n    \"city\": {\n     \"type\": \"string\",\n" \
    "     \"description\": \"\\u57ce\\u5e02 name\"\n" \
    "    },\n    \"unit\": {\n     \"type\": \"string\",\n" \
    "     \"enum\": [\n      \"celsius\",\n      \"fahrenheit\"\n" \
    "     ]\n    },\n    \"days\": {\n     \"type\": \"integer\",\n" \
    "     \"minimum\": 1,\n     \"maximum\": 14,\n" \
    "     \"default\": 0\n    },\n    \"precision\": {\n" \
    "     \"type\": \"number\",\n     \"default\": 0.5,\n" \
    "     \"tiny\": 0.00001,\n     \"huge\": 1E22,\n" \
    "     \"third\": 0.3333333333333333,\n     \"exp\": 2.5E+3,\n" \
    "     \"neg\": -0.0001,\n     \"big_int\": 123456789012345678901234567890\n" \
    "    },\n    \"flags\": {\n     \"type\": \"array\",\n" \
    "     \"items\": {\n      \"type\": \"boolean\"\n" \
    "     },\n     \"default\": [\n      true,\n" \
    "      false,\n      null\n     ]\n    },\n" \
    "    \"empty\": {},\n    \"none\": []\n   },\n" \
    "   \"required\": [\n    \"city\"\n   ]\n  }\n" \
    " }\n}"

/* the opening <tools> tag and the weather tool as the template renders it (json.dumps) */
#define WEATHER_TOOL_RENDERED \
    "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\"" \
    ": \"Current weather in a city \342\200\224 \302\260C, \302\253quoted\302\273 \\\"text\\\" a" \
    "nd a back\\\\slash\\ttab\\u0001ctl\", \"parameters\": {\"type\": \"object\", \"properties\"" \
    ": {\"city\": {\"type\": \"string\", \"description\": \"\345\237\216\345\270\202 name\"}, \"" \
    "unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}, \"days\": {\"type\"" \
    ": \"integer\", \"minimum\": 1, \"maximum\": 14, \"default\": 0}, \"precision\": {\"type\": " \
    "\"number\", \"default\": 0.5, \"tiny\": 1e-05, \"huge\": 1e+22, \"third\": 0.33333333333333" \
    "33, \"exp\": 2500.0, \"neg\": -0.0001, \"big_int\": 123456789012345678901234567890}, \"flag" \
    "s\": {\"type\": \"array\", \"items\": {\"type\": \"boolean\"}, \"default\": [true, false, n" \
    "ull]}, \"empty\": {}, \"none\": []}, \"required\": [\"city\"]}}}\n"

static const chat_case chat_cases[] = {
    { "one_user", true, 0, { NULL }, 1,
      { { QN_CHAT_USER, "Hi", NULL, 0 } },
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" },
    { "system_user", true, 0, { NULL }, 2,
      { { QN_CHAT_SYSTEM, "You are a helpful assistant.", NULL, 0 },
        { QN_CHAT_USER, "Give me a short introduction to large language models.", NULL, 0 } },
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nGive me a short introduction to large language models.<|im_end|>\n"
      "<|im_start|>assistant\n" },
    { "multi_turn", true, 0, { NULL }, 6,
      { { QN_CHAT_SYSTEM, "Be terse.", NULL, 0 },
        { QN_CHAT_USER, "2+2?", NULL, 0 },
        { QN_CHAT_ASSISTANT, "4", NULL, 0 },
        { QN_CHAT_USER, "And 3+3?", NULL, 0 },
        { QN_CHAT_ASSISTANT, "6", NULL, 0 },
        { QN_CHAT_USER, "\344\275\240\345\245\275 \360\237\221\213\360\237\217\275\nbye", NULL, 0 } },
      "<|im_start|>system\nBe terse.<|im_end|>\n"
      "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
      "4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
      "<|im_start|>assistant\n6<|im_end|>\n<|im_start|>user\n"
      "\344\275\240\345\245\275 \360\237\221\213\360\237\217\275\n"
      "bye<|im_end|>\n<|im_start|>assistant\n" },
    { "no_generation_prompt", false, 0, { NULL }, 2,
      { { QN_CHAT_USER, "Hi", NULL, 0 },
        { QN_CHAT_ASSISTANT, "Hello! How can I help?", NULL, 0 } },
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n" },
    { "system_later", true, 0, { NULL }, 3,
      { { QN_CHAT_USER, "a", NULL, 0 },
        { QN_CHAT_SYSTEM, "new rules", NULL, 0 },
        { QN_CHAT_USER, "b", NULL, 0 } },
      "<|im_start|>user\na<|im_end|>\n<|im_start|>system\n"
      "new rules<|im_end|>\n<|im_start|>user\nb<|im_end|>\n"
      "<|im_start|>assistant\n" },
    { "empty_content", true, 0, { NULL }, 2,
      { { QN_CHAT_SYSTEM, "", NULL, 0 },
        { QN_CHAT_USER, "", NULL, 0 } },
      "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n" },
    { "tools_no_system", true, 1, { WEATHER_TOOL }, 1,
      { { QN_CHAT_USER, "Weather in Paris?", NULL, 0 } },
      "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user q"
      "uery.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
      WEATHER_TOOL_RENDERED
      "</tools>\n\nFor each function call, return a json object with function name and arguments w"
      "ithin <tool_call></tool_call> XML tags:\n"
      "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
      "</tool_call><|im_end|>\n<|im_start|>user\n"
      "Weather in Paris?<|im_end|>\n<|im_start|>assistant\n" },
    { "tools_full", true, 2, { WEATHER_TOOL, "{\"type\":\"function\",\"function\":{\"name\":\"search\",\"description\":\"Web search\",\"p"
            "arameters\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":"
            "[\"q\"]}}}" }, 9,
      { { QN_CHAT_SYSTEM, "You are a helpful assistant.", NULL, 0 },
        { QN_CHAT_USER, "Weather in Paris and Tokyo, then search news.", NULL, 0 },
        { QN_CHAT_ASSISTANT, NULL, tc_7_2, 2 },
        { QN_CHAT_TOOL, "{\"temp\": 18}", NULL, 0 },
        { QN_CHAT_TOOL, "{\"temp\": 25}", NULL, 0 },
        { QN_CHAT_ASSISTANT, "Let me search.", tc_7_5, 1 },
        { QN_CHAT_TOOL, "no results", NULL, 0 },
        { QN_CHAT_ASSISTANT, "Paris 18 \302\260C, Tokyo 25 \302\260C; no news.", NULL, 0 },
        { QN_CHAT_USER, "Thanks", NULL, 0 } },
      "<|im_start|>system\nYou are a helpful assistant.\n"
      "\n# Tools\n\nYou may call one or more functions to assist with the user query.\n"
      "\nYou are provided with function signatures within <tools></tools> XML tags:\n"
      WEATHER_TOOL_RENDERED
      "{\"type\": \"function\", \"function\": {\"name\": \"search\", \"description\": \"Web search"
      "\", \"parameters\": {\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"string\"}},"
      " \"required\": [\"q\"]}}}\n</tools>\n\nFor each function call, return a json object with fu"
      "nction name and arguments within <tool_call></tool_call> XML tags:\n"
      "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
      "</tool_call><|im_end|>\n<|im_start|>user\n"
      "Weather in Paris and Tokyo, then search news.<|im_end|>\n"
      "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \""
      "Paris\", \"unit\": \"celsius\", \"days\": 2, \"x\": 1.0}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"\346\235"
      "\261\344\272\254\", \"note\": \"line1\\nline2 \\\"q\\\"\"}}\n"
      "</tool_call><|im_end|>\n<|im_start|>user\n"
      "<tool_response>\n{\"temp\": 18}\n</tool_response>\n"
      "<tool_response>\n{\"temp\": 25}\n</tool_response><|im_end|>\n"
      "<|im_start|>assistant\nLet me search.\n<tool_call>\n"
      "{\"name\": \"search\", \"arguments\": {\"q\": \"news\"}}\n"
      "</tool_call><|im_end|>\n<|im_start|>user\n"
      "<tool_response>\nno results\n</tool_response><|im_end|>\n"
      "<|im_start|>assistant\nParis 18 \302\260C, Tokyo 25 \302\260C; no news.<|im_end|>\n"
      "<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n" },
    { "tool_call_verbatim", true, 1, { "{\n \"type\": \"function\",\n \"function\": {\n"
            "  \"name\": \"search\",\n  \"description\": \"Web search\",\n"
            "  \"parameters\": {\n   \"type\": \"object\",\n"
            "   \"properties\": {\n    \"q\": {\n     \"type\": \"string\"\n"
            "    }\n   },\n   \"required\": [\n    \"q\"\n"
            "   ]\n  }\n }\n}" }, 3,
      { { QN_CHAT_USER, "find x", NULL, 0 },
        { QN_CHAT_ASSISTANT, "", tc_8_1, 1 },
        { QN_CHAT_TOOL, "found", NULL, 0 } },
      "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user q"
      "uery.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
      "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"search\", \"description\": \"W"
      "eb search\", \"parameters\": {\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"st"
      "ring\"}}, \"required\": [\"q\"]}}}\n</tools>\n"
      "\nFor each function call, return a json object with function name and arguments within <too"
      "l_call></tool_call> XML tags:\n<tool_call>\n"
      "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
      "</tool_call><|im_end|>\n<|im_start|>user\n"
      "find x<|im_end|>\n<|im_start|>assistant\n"
      "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\":\"x\",  \"n\":1.50}}\n"
      "</tool_call><|im_end|>\n<|im_start|>user\n"
      "<tool_response>\nfound\n</tool_response><|im_end|>\n"
      "<|im_start|>assistant\n" },
    { "tool_first", false, 0, { NULL }, 2,
      { { QN_CHAT_TOOL, "r1", NULL, 0 },
        { QN_CHAT_USER, "ok", NULL, 0 } },
      "<|im_start|>user\n<tool_response>\nr1\n</tool_response><|im_end|>\n<|im_start|>user\nok<|im_end|>\n" },
};
