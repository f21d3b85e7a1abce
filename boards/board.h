/* board.h — device profiles ("boards"): memory budget policy and kernel tuning per device family.
 *
 * Profiles are JSON files under boards/<vendor>/<device>.json (schema: boards/README.md), embedded in the
 * binary at build time and parsed with cJSON at run time. A device picks the matching profile with the
 * highest specificity; `--board NAME` (a profile name, or a path to a .json file) overrides it.
 * This room knows nothing of Vulkan: devices are described by struct qn_board_device. */
#ifndef QN_BOARD_H
#define QN_BOARD_H

#include <stdbool.h>
#include <stdint.h>

/* same numbers as VkPhysicalDeviceType */
enum qn_board_devtype {
    QN_BOARD_ANY = -1, QN_BOARD_OTHER = 0, QN_BOARD_INTEGRATED = 1, QN_BOARD_DISCRETE = 2, QN_BOARD_VIRTUAL = 3,
    QN_BOARD_CPU = 4
};

#define QN_BOARD_MAX_IDS 32

struct qn_board {
    char name[64];
    char description[256];
    char origin[256];          /* "nvidia/h100.json (built in)" or the file path */
    struct {
        bool has_vendor;
        uint32_t vendor_id;
        uint32_t ndevice_ids;
        uint32_t device_ids[QN_BOARD_MAX_IDS];
        char name_contains[128];   /* "" = any; case-insensitive */
        int device_type;           /* enum qn_board_devtype */
    } match;
    struct {
        double weights_fraction, kv_fraction, expert_cache_fraction; /* of (device budget - reserve) */
        uint64_t reserve_bytes;
    } mem;
    struct {
        uint32_t matvec_wg, matvec_rows, norm_wg, eltwise_wg;
        bool prefer_subgroup;
        /* specialization constants 0-4 (wg, rows per workgroup, unroll, rows per subgroup, x stage in vec4)
         * of the matvec kernels: [0] bf16/f16/f32 (matvec.comp), [1] ggml block formats (qmatvec.comp).
         * From the optional keys matvec_unroll/sgrows/xsh and qmatvec_wg/rows/unroll/sgrows/xsh; keys left
         * out take matvec_wg / matvec_rows and the shaders' defaults (unroll 4 / 2, sgrows 1, xsh 0). */
        uint32_t mv_spec[2][5];
        /* chunks of 64 tokens per segment of the prefill delta rule's two passes (optional key gdn_wy_seg, 1..256;
         * 0 = the runtime's default, 16): the scratch holds one segment (2 MB per chunk at the 80B's shape), so
         * boards with memory to spare take longer segments (fewer pass-1 dispatches) */
        uint32_t gdn_wy_seg;
    } tune;
};

/* What a profile is matched against (filled from the Vulkan caps by the runtime). */
struct qn_board_device {
    uint32_t vendor_id, device_id;
    const char *name;
    int type; /* enum qn_board_devtype */
};

/* Parse + schema-check one profile. `origin` names it in error messages. QN_E_FORMAT on bad input. */
int qn_board_parse(const char *json, const char *origin, struct qn_board *out);
/* Read and parse a profile file. */
int qn_board_load_file(const char *path, struct qn_board *out);
/* The built-in profiles (parsed once; an error here means a broken embedded file). */
int qn_board_builtin(const struct qn_board **list, unsigned *n);
/* Specificity of `b` for device d: -1 if it does not match, else higher = more specific
 * (device id 8, name 4, vendor 2, type 1; an empty match scores 0). */
int qn_board_score(const struct qn_board *b, const struct qn_board_device *d);
/* `override` (profile name or path to a .json file) if given, else the best built-in match for d. */
int qn_board_select(const char *override, const struct qn_board_device *d, struct qn_board *out);

/* Bytes for each use from the device-local budget: (budget - reserve) * fraction. */
struct qn_board_split { uint64_t weights, kv, expert_cache, reserve; };
void qn_board_split(const struct qn_board *b, uint64_t device_budget, struct qn_board_split *s);

/* generated from the JSON files (boards/embed.py) */
struct qn_board_src { const char *path, *json; };
extern const struct qn_board_src qn_board_srcs[];
extern const unsigned qn_board_nsrcs;

#endif
