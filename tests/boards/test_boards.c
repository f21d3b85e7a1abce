/* test_boards.c — board profiles: every boards/ JSON file is embedded and passes the schema, devices pick
 * the most specific profile, --board overrides, and malformed profiles fail with a clear message. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "board.h"
#include "qn_err.h"

static int checks, failures;
static const char *boards_dir;
static int unembedded;

static void expect(bool ok, const char *what, const char *detail)
{
    checks++;
    if (!ok) failures++;
    printf("%-4s %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    size_t l = strlen(path);
    if (type != FTW_F || l < 5 || strcmp(path + l - 5, ".json")) return 0;
    const char *rel = path + strlen(boards_dir) + 1;
    bool found = false;
    for (unsigned i = 0; i < qn_board_nsrcs; i++) found |= !strcmp(qn_board_srcs[i].path, rel);
    if (!found) unembedded++;
    expect(found, "embedded (listed in boards/meson.build)", rel);
    return 0;
}

static void match(const char *want, uint32_t vendor, uint32_t device, const char *name, int type)
{
    struct qn_board_device d = { vendor, device, name, type };
    struct qn_board b;
    int rc = qn_board_select(NULL, &d, &b);
    char detail[256];
    snprintf(detail, sizeof detail, "'%s' -> %s", name, rc < 0 ? qn_errmsg() : b.name);
    expect(rc == 0 && !strcmp(b.name, want), "device picks its profile", detail);
}

static void malformed(const char *json, const char *needle)
{
    struct qn_board b;
    int rc = qn_board_parse(json, "test.json", &b);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rc < 0 ? qn_errmsg() : "(accepted!)");
    expect(rc == QN_E_FORMAT && strstr(qn_errmsg(), needle) && strstr(qn_errmsg(), "test.json"), "malformed profile rejected",
           detail);
}

#define GOOD_MATCH "\"match\": {}"
#define GOOD_MEM "\"memory\": {\"weights_fraction\": 0.3, \"kv_fraction\": 0.1, \"expert_cache_fraction\": 0.4, \"reserve_mib\": 64}"
#define GOOD_TUNE "\"tuning\": {\"matvec_wg\": 64, \"matvec_rows\": 2, \"norm_wg\": 64, \"eltwise_wg\": 64, \"subgroup\": \"prefer\"}"

int main(int argc, char **argv)
{
    const struct qn_board *list;
    unsigned n;
    int rc = qn_board_builtin(&list, &n);
    expect(rc == 0 && n >= 5, "built-in profiles parse and pass the schema", rc < 0 ? qn_errmsg() : NULL);
    for (unsigned i = 0; rc == 0 && i < n; i++) printf("     %-20s %s\n", list[i].name, list[i].origin);
    if (argc > 1) {
        boards_dir = argv[1];
        nftw(boards_dir, visit, 8, FTW_PHYS);
        expect(unembedded == 0, "every boards/**.json is embedded", NULL);
    }

    match("nvidia-h100", 0x10de, 0x2330, "NVIDIA H100 80GB HBM3", QN_BOARD_DISCRETE);
    match("nvidia-h100", 0x10de, 0x2331, "NVIDIA H100 PCIe", QN_BOARD_DISCRETE);
    match("generic-discrete", 0x10de, 0x2684, "NVIDIA GeForce RTX 4090", QN_BOARD_DISCRETE);
    match("generic-discrete", 0x1002, 0x744c, "AMD Radeon RX 7900 XTX (RADV NAVI31)", QN_BOARD_DISCRETE);
    match("generic-integrated", 0x8086, 0x46a6, "Intel(R) Iris(R) Xe Graphics (ADL GT2)", QN_BOARD_INTEGRATED);
    match("lavapipe", 0x10005, 0, "llvmpipe (LLVM 15.0.6, 256 bits)", QN_BOARD_CPU);
    match("generic", 0x1af4, 0x1050, "Virtio-GPU Venus", QN_BOARD_VIRTUAL);

    struct qn_board_device h100 = { 0x10de, 0x2330, "NVIDIA H100 80GB HBM3", QN_BOARD_DISCRETE };
    struct qn_board b;
    rc = qn_board_select("lavapipe", &h100, &b);
    expect(rc == 0 && !strcmp(b.name, "lavapipe"), "--board NAME overrides the match", NULL);
    rc = qn_board_select("no-such-board", &h100, &b);
    expect(rc < 0 && strstr(qn_errmsg(), "unknown board 'no-such-board'"), "unknown --board name", qn_errmsg());

    char path[] = "/tmp/qnext-board-XXXXXX.json";
    int fd = mkstemps(path, 5);
    const char bad[] = "{ \"name\": \"x\", " GOOD_MATCH ", " GOOD_MEM ", \"tuning\": { \"matvec_wg\": 64 ";
    bool wrote = fd >= 0 && write(fd, bad, sizeof bad - 1) == (ssize_t)(sizeof bad - 1);
    if (fd >= 0) close(fd);
    rc = qn_board_select(path, &h100, &b);
    expect(wrote && rc == QN_E_FORMAT && strstr(qn_errmsg(), path), "malformed --board file", qn_errmsg());
    unlink(path);
    rc = qn_board_select("/nonexistent/board.json", &h100, &b);
    expect(rc == -ENOENT && strstr(qn_errmsg(), "/nonexistent/board.json"), "missing --board file", qn_errmsg());

    rc = qn_board_parse("{\"name\": \"ok\", " GOOD_MATCH ", " GOOD_MEM ", " GOOD_TUNE "}", "test.json", &b);
    expect(rc == 0, "a minimal valid profile parses", rc < 0 ? qn_errmsg() : NULL);
    malformed("", "not valid JSON");
    malformed("{", "not valid JSON");
    malformed("[]", "must be a JSON object");
    malformed("{" GOOD_MATCH ", " GOOD_MEM ", " GOOD_TUNE "}", "'name' must be");
    malformed("{\"name\": \"H100!\", " GOOD_MATCH ", " GOOD_MEM ", " GOOD_TUNE "}", "may only use");
    malformed("{\"name\": \"x\", \"tunning\": 1, " GOOD_MATCH ", " GOOD_MEM ", " GOOD_TUNE "}", "unknown key 'tunning'");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", " GOOD_TUNE "}", "'memory' must be an object");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", \"memory\": {\"weights_fraction\": 1.5, \"kv_fraction\": 0.1, "
              "\"expert_cache_fraction\": 0.4, \"reserve_mib\": 64}, " GOOD_TUNE "}", "memory.weights_fraction: 1.5");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", \"memory\": {\"weights_fraction\": 0.5, \"kv_fraction\": 0.3, "
              "\"expert_cache_fraction\": 0.4, \"reserve_mib\": 64}, " GOOD_TUNE "}", "add up to 1.2");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", " GOOD_MEM ", \"tuning\": {\"matvec_wg\": 0, \"matvec_rows\": 2, "
              "\"norm_wg\": 64, \"eltwise_wg\": 64, \"subgroup\": \"prefer\"}}", "tuning.matvec_wg: 0");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", " GOOD_MEM ", \"tuning\": {\"matvec_wg\": 64, \"matvec_rows\": 2.5, "
              "\"norm_wg\": 64, \"eltwise_wg\": 64, \"subgroup\": \"prefer\"}}", "not an integer");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", " GOOD_MEM ", \"tuning\": {\"matvec_wg\": 64, \"matvec_rows\": 2, "
              "\"norm_wg\": 64, \"eltwise_wg\": 64, \"subgroup\": \"maybe\"}}", "tuning.subgroup");
    malformed("{\"name\": \"x\", " GOOD_MATCH ", " GOOD_MEM ", \"tuning\": {\"matvec_wg\": 64, \"matvec_rows\": 2, "
              "\"norm_wg\": 64, \"eltwise_wg\": 64, \"subgroup\": \"prefer\", \"gdn_wy_seg\": 0}}", "tuning.gdn_wy_seg: 0");
    malformed("{\"name\": \"x\", \"match\": {\"device_type\": \"gpu\"}, " GOOD_MEM ", " GOOD_TUNE "}", "device_type");
    malformed("{\"name\": \"x\", \"match\": {\"vendor_id\": \"zz\"}, " GOOD_MEM ", " GOOD_TUNE "}", "match.vendor_id");
    malformed("{\"name\": \"x\", \"match\": {\"name_contains\": 5}, " GOOD_MEM ", " GOOD_TUNE "}", "name_contains");

    rc = qn_board_parse("{\"name\": \"ok\", " GOOD_MATCH ", " GOOD_MEM ", " GOOD_TUNE "}", "test.json", &b);
    expect(rc == 0 && b.tune.gdn_wy_seg == 0, "gdn_wy_seg left out: 0 (the runtime's default)", NULL);
    rc = qn_board_select(NULL, &h100, &b);
    expect(rc == 0 && b.tune.gdn_wy_seg == 64, "nvidia-h100: the delta rule in segments of 64 chunks", NULL);

    struct qn_board_split s;
    rc = qn_board_parse("{\"name\": \"ok\", " GOOD_MATCH ", " GOOD_MEM ", " GOOD_TUNE "}", "test.json", &b);
    qn_board_split(&b, 1064ull << 20, &s);
    expect(rc == 0 && s.reserve == 64ull << 20 && s.weights == 300ull << 20 && s.kv == 100ull << 20 &&
           s.expert_cache == 400ull << 20, "budget split: (budget - reserve) * fraction", NULL);

    printf("%s boards: %d of %d checks failed\n", failures ? "FAIL" : "PASS", failures, checks);
    return failures ? 1 : 0;
}
