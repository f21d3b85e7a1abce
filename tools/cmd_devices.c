/* cmd_devices.c — `qnext devices`: every Vulkan device, its capabilities and the board profile it gets. */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "cli.h"
#include "qn_err.h"
#include "vk.h"

int qn_cmd_devices(int argc, char **argv);

enum { OPT_JSON = QN_OPT_FIRST_FREE };

static const char help[] =
    "usage: qnext devices [--json] [--board NAME|FILE.json]\n\n"
    "Lists the Vulkan devices with their capabilities (types, subgroups, limits, memory heaps, quirks) and\n"
    "the board profile each one matches. The index is what --device takes.\n\n"
    "      --json             machine-readable output (a JSON array, one object per device)\n"
    "      --board NAME       show this profile instead of the matched one (name or .json file)\n"
    "  -h, --help             this text\n";

static double gib(uint64_t b) { return (double)b / (1024.0 * 1024 * 1024); }

static void print_device(const struct qn_caps *c, const struct qn_board *b)
{
    char ops[256], feats[512];
    qn_caps_subgroup_ops_str(c->subgroup_ops, ops, sizeof ops);
    qn_caps_feat_str(c->features, feats, sizeof feats);
    printf("device %u: %s\n", c->index, c->name);
    printf("  type %s, vendor 0x%04x, device 0x%04x, Vulkan %u.%u.%u, driver %s (%s)\n", qn_caps_type_name(c->type),
           c->vendor_id, c->device_id, VK_API_VERSION_MAJOR(c->api_version), VK_API_VERSION_MINOR(c->api_version),
           VK_API_VERSION_PATCH(c->api_version), c->driver_name, c->driver_info);
    printf("  board: %s (%s)\n", b->name, b->origin);
    printf("  types: fp16 %d, bf16 %d, int8 %d, int16 %d, int64 %d; storage 16-bit %d, 8-bit %d; int dot %d%s%s; "
           "cooperative matrix %d\n", c->fp16, c->bf16, c->int8, c->int16, c->int64, c->storage16, c->storage8,
           c->int_dot, c->int_dot_accel ? " (4x8 packed signed accelerated)" : "",
           c->int_dot_mixed_accel ? " (4x8 packed mixed accelerated)" : "", c->coopmat);
    printf("  cooperative matrix shapes (VK_NV_cooperative_matrix, subgroup scope):%s", c->n_cm_shapes ? "" : " none");
    for (uint32_t i = 0; i < c->n_cm_shapes; i++) {
        char sh[64];
        qn_cm_shape_str(&c->cm_shapes[i], sh, sizeof sh);
        printf("%s %s", i ? "," : "", sh);
    }
    if (c->coopmat_nv) printf("; qnext's tensor-core kernels use 16x%ux16 f16*f16+f32->f32", c->coopmat_nv_n);
    printf("\n");
    printf("  subgroups: size %u (%u..%u), size control %d, full subgroups %d, compute %s; ops: %s\n",
           c->subgroup_size, c->subgroup_min, c->subgroup_max, c->subgroup_size_control, c->full_subgroups,
           (c->subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT) ? "yes" : "no", ops);
    printf("  limits: shared %u KiB, workgroup %u (%u x %u x %u), groups %u x %u x %u, push %u B, storage range "
           "%.2f GiB, offset align %u, max alloc %.2f GiB\n", c->max_shared / 1024, c->max_wg_invocations,
           c->max_wg_size[0], c->max_wg_size[1], c->max_wg_size[2], c->max_wg_count[0], c->max_wg_count[1],
           c->max_wg_count[2], c->max_push, gib(c->max_storage_range), c->min_storage_align, gib(c->max_alloc));
    printf("  memory: %.2f GiB device-local, UMA %s, memory budget ext %s\n", gib(c->device_local_bytes),
           c->uma ? "yes" : "no", c->mem_budget ? "yes" : "no");
    for (uint32_t i = 0; i < c->nheaps; i++)
        printf("    heap %u: %.2f GiB%s, budget %.2f GiB\n", i, gib(c->heaps[i].size),
               (c->heaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) ? " device-local" : "", gib(c->heaps[i].budget));
    char asyncq[32] = "no";
    if (c->async_compute) snprintf(asyncq, sizeof asyncq, "family %u", c->async_family);
    printf("  queues: compute family %u, dedicated transfer queue %s, async compute %s; timestamps %s (%u bits, %.3g "
           "ns/tick)\n", c->compute_family, c->transfer_queue ? "yes" : "no", asyncq, c->timestamps ? "yes" : "no",
           c->timestamp_bits, c->timestamp_period);
    printf("  kernel features: %s\n", feats);
    for (uint32_t q = 1; q; q <<= 1)
        if (c->quirks & q) printf("  quirk %s: %s\n", qn_quirk_name(q), qn_quirk_why(q));
}

static cJSON *device_json(const struct qn_caps *c, const struct qn_board *b)
{
    char ops[256], feats[512], buf[32];
    cJSON *o = cJSON_CreateObject(), *heaps = cJSON_CreateArray(), *quirks = cJSON_CreateArray();
    qn_caps_subgroup_ops_str(c->subgroup_ops, ops, sizeof ops);
    qn_caps_feat_str(c->features, feats, sizeof feats);
    cJSON_AddNumberToObject(o, "index", c->index);
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "type", qn_caps_type_name(c->type));
    snprintf(buf, sizeof buf, "0x%04x", c->vendor_id);
    cJSON_AddStringToObject(o, "vendor_id", buf);
    snprintf(buf, sizeof buf, "0x%04x", c->device_id);
    cJSON_AddStringToObject(o, "device_id", buf);
    snprintf(buf, sizeof buf, "%u.%u.%u", VK_API_VERSION_MAJOR(c->api_version), VK_API_VERSION_MINOR(c->api_version),
             VK_API_VERSION_PATCH(c->api_version));
    cJSON_AddStringToObject(o, "api_version", buf);
    cJSON_AddStringToObject(o, "driver", c->driver_name);
    cJSON_AddStringToObject(o, "driver_info", c->driver_info);
    cJSON_AddStringToObject(o, "board", b->name);
    cJSON_AddBoolToObject(o, "fp16", c->fp16);
    cJSON_AddBoolToObject(o, "bf16", c->bf16);
    cJSON_AddBoolToObject(o, "int8", c->int8);
    cJSON_AddBoolToObject(o, "storage16", c->storage16);
    cJSON_AddBoolToObject(o, "storage8", c->storage8);
    cJSON_AddBoolToObject(o, "int_dot", c->int_dot);
    cJSON_AddBoolToObject(o, "int_dot_accelerated", c->int_dot_accel);
    cJSON_AddBoolToObject(o, "int_dot_mixed_accelerated", c->int_dot_mixed_accel);
    cJSON_AddBoolToObject(o, "cooperative_matrix", c->coopmat);
    cJSON *shapes = cJSON_AddArrayToObject(o, "cooperative_matrix_shapes");
    for (uint32_t i = 0; shapes && i < c->n_cm_shapes; i++) {
        char sh[64];
        qn_cm_shape_str(&c->cm_shapes[i], sh, sizeof sh);
        cJSON_AddItemToArray(shapes, cJSON_CreateString(sh));
    }
    cJSON_AddNumberToObject(o, "subgroup_size", c->subgroup_size);
    cJSON_AddNumberToObject(o, "subgroup_min", c->subgroup_min);
    cJSON_AddNumberToObject(o, "subgroup_max", c->subgroup_max);
    cJSON_AddStringToObject(o, "subgroup_ops", ops);
    cJSON_AddBoolToObject(o, "subgroup_size_control", c->subgroup_size_control);
    cJSON_AddNumberToObject(o, "max_shared_bytes", c->max_shared);
    cJSON_AddNumberToObject(o, "max_workgroup_invocations", c->max_wg_invocations);
    cJSON_AddNumberToObject(o, "max_storage_buffer_range", (double)c->max_storage_range);
    cJSON_AddNumberToObject(o, "device_local_bytes", (double)c->device_local_bytes);
    cJSON_AddBoolToObject(o, "uma", c->uma);
    cJSON_AddBoolToObject(o, "memory_budget", c->mem_budget);
    for (uint32_t i = 0; i < c->nheaps; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "size", (double)c->heaps[i].size);
        cJSON_AddNumberToObject(h, "budget", (double)c->heaps[i].budget);
        cJSON_AddBoolToObject(h, "device_local", (c->heaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0);
        cJSON_AddItemToArray(heaps, h);
    }
    cJSON_AddItemToObject(o, "heaps", heaps);
    cJSON_AddBoolToObject(o, "timestamps", c->timestamps);
    cJSON_AddNumberToObject(o, "timestamp_period_ns", c->timestamp_period);
    cJSON_AddBoolToObject(o, "transfer_queue", c->transfer_queue);
    cJSON_AddStringToObject(o, "kernel_features", feats);
    for (uint32_t q = 1; q; q <<= 1)
        if (c->quirks & q) cJSON_AddItemToArray(quirks, cJSON_CreateString(qn_quirk_name(q)));
    cJSON_AddItemToObject(o, "quirks", quirks);
    return o;
}

int qn_cmd_devices(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, 0, OPT_JSON }, { "board", required_argument, 0, QN_OPT_BOARD },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *board = NULL;
    int json = 0, opt, rc;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = 1; break;
        case QN_OPT_BOARD: board = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: return qn_cli_usage_error("devices");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qnext devices: unexpected argument '%s'\n", argv[optind]);
        return qn_cli_usage_error("devices");
    }
    struct qn_caps *caps = NULL;
    uint32_t n = 0;
    if ((rc = qn_vk_enumerate(&caps, &n)) < 0) return qn_cli_report("devices", rc);
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    for (uint32_t i = 0; i < n; i++) {
        struct qn_board_device d;
        struct qn_board b;
        qn_caps_board_device(&caps[i], &d);
        if ((rc = qn_board_select(board, &d, &b)) < 0) break;
        if (json) cJSON_AddItemToArray(arr, device_json(&caps[i], &b));
        else print_device(&caps[i], &b);
    }
    free(caps);
    if (rc >= 0 && json) {
        char *s = cJSON_Print(arr);
        if (s) puts(s);
        free(s);
    }
    cJSON_Delete(arr);
    return qn_cli_report("devices", rc);
}
