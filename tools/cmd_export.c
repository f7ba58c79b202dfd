/* onebit export (onebit-export): a checkpoint to a .1bit file (and a C header
 * for the embedded runtime), with the size table; or --inspect FILE to list
 * the tensors of a .1bit file of either version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "onebit/format.h"

/* 1234567 as "1,234,567". */
static const char *grouped(uint64_t v, char *buf, size_t n) {
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i != len - 1)
            buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

static void print_report(const char *output, const char *header, const ob_size_report *r) {
    char a[32], b[32];
    printf("wrote %s (%s bytes)\n", output, grouped(r->total_bytes, a, sizeof a));
    printf("%-12s %8s %15s %15s %12s\n", "kind", "tensors", "weights", "bytes", "bits/weight");
    for (int k = 0; k < OB_SIZE_KIND_COUNT; k++) {
        if (!r->bytes[k] && !r->tensors[k])
            continue;
        if (r->weights[k])
            printf("%-12s %8d %15s %15s %12.3f\n", ob_size_kind_name(k), r->tensors[k], grouped(r->weights[k], a, sizeof a),
                   grouped(r->bytes[k], b, sizeof b), 8.0 * (double)r->bytes[k] / (double)r->weights[k]);
        else
            printf("%-12s %8s %15s %15s %12s\n", ob_size_kind_name(k), "", "", grouped(r->bytes[k], b, sizeof b), "");
    }
    printf("%-12s %8s %15s %15s %12.3f\n", "total", "", grouped(r->total_weights, a, sizeof a),
           grouped(r->total_bytes, b, sizeof b), r->total_weights ? 8.0 * (double)r->total_bytes / r->total_weights : 0);
    if (r->quantised_weights)
        printf("quantised layers: %s weights in %s bytes, %.3f bits per weight\n",
               grouped(r->quantised_weights, a, sizeof a), grouped(r->quantised_bytes, b, sizeof b),
               8.0 * (double)r->quantised_bytes / (double)r->quantised_weights);
    if (header)
        printf("C header: %s (%s bytes)\n", header, grouped(r->header_bytes, a, sizeof a));
    if (r->verified_tokens)
        printf("verified: the runtime's logits from the file equal those from the checkpoint, bit for bit "
               "(%d positions)\n",
               r->verified_tokens);
}

static int inspect(const char *cmd, const char *path) {
    ob_1bit_file *f;
    if (ob_1bit_open(path, NULL, &f))
        return ob_cmd_fail(cmd);
    char a[32];
    printf("%s: .1bit version %d, %s bytes, %d tensors, config %zu bytes, tokenizer %zu bytes\n", path, f->version,
           grouped(f->file_bytes, a, sizeof a), f->num_tensors, f->config_len, f->tokenizer_len);
    for (int i = 0; i < f->num_tensors; i++) {
        const ob_1bit_tensor *t = &f->tensors[i];
        char shape[96];
        int o = 0;
        for (int d = 0; d < t->ndims; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf("  %-48s %-9s [%s] %s bytes", t->name, ob_dtype_name(t->dtype), shape,
               grouped(t->data_bytes, a, sizeof a));
        if (t->num_scales == 1)
            printf(", scale %.6g", (double)t->scales[0]);
        else if (t->num_scales)
            printf(", %d scales", t->num_scales);
        printf("\n");
    }
    ob_1bit_close(f);
    return 0;
}

/* out.1bit -> out.h; any other name gets .h appended. */
static char *header_path(const char *output) {
    size_t n = strlen(output);
    char *p = malloc(n + 3);
    if (!p)
        return NULL;
    memcpy(p, output, n + 1);
    if (n > 5 && strcmp(output + n - 5, ".1bit") == 0)
        strcpy(p + n - 5, ".h");
    else
        strcat(p, ".h");
    return p;
}

int ob_cmd_export(int argc, char **argv) {
    const char *model_dir = NULL, *output = NULL, *pack_mode = NULL, *embed = "f32", *inspect_path = NULL;
    bool c_header = false, change_mode = false, verify = true;
    const ob_arg args[] = {
        {"--model-dir", OB_ARG_STRING, &model_dir, "DIR", "checkpoint directory (or a training output with 'latest')",
         NULL, 0, 0, NULL},
        {"--output", OB_ARG_STRING, &output, "FILE", "the .1bit file to write", NULL, 0, 0, NULL},
        {"--pack-mode", OB_ARG_CHOICE, &pack_mode, NULL,
         "mode of the binary/ternary layers; must match the checkpoint's unless --change-mode (default: as trained)",
         "ternary|binary", 0, 0, NULL},
        {"--change-mode", OB_ARG_BOOL, &change_mode, NULL,
         "repack layers trained in the other mode with --pack-mode's quantiser (a different model)", NULL, 0, 0, NULL},
        {"--embed-dtype", OB_ARG_CHOICE, &embed, NULL,
         "storage of the embedding table and an untied head (f32 exact; f16 and int8 lossy)", "f32|f16|int8", 0, 0,
         NULL},
        {"--emit-c-header", OB_ARG_BOOL, &c_header, NULL,
         "also write a C header for the embedded runtime (the output name with .h)", NULL, 0, 0, NULL},
        {"--verify", OB_ARG_BOOL, &verify, NULL,
         "reload the file and compare the runtime's logits with the checkpoint's, bit for bit (on; --verify=false "
         "skips it)",
         NULL, 0, 0, NULL},
        {"--inspect", OB_ARG_STRING, &inspect_path, "FILE", "list the tensors of a .1bit file (version 1 or 2) and exit",
         NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Export a checkpoint to a .1bit file (packed weights, config and tokenizer; docs/FORMAT.md), "
                   "optionally a C header for the embedded runtime (docs/EMBEDDED.md), and print its size table.",
        .usage = "--model-dir DIR --output model.1bit [--pack-mode ternary|binary] [--emit-c-header] "
                 "[--embed-dtype f32|f16|int8]",
        .details = "Weights are packed with the training quantiser, so the runtime gives the same logits from the file "
                   "as from the checkpoint (checked unless --verify=false). --pack-mode must agree with the layers' "
                   "trained mode: --change-mode repacks the latent weights with the other quantiser instead, which "
                   "is a different model.",
        .args = args,
    };
    int rc = ob_cmd_parse(&spec, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    if (inspect_path) {
        rc = inspect(argv[0], inspect_path);
        ob_args_free(&spec, NULL);
        return rc;
    }
    if (!model_dir || !output) {
        fprintf(stderr, "%s: give --model-dir DIR and --output FILE (see --help)\n", argv[0]);
        ob_args_free(&spec, NULL);
        return 2;
    }
    ob_export_options o = {0};
    o.model_dir = model_dir;
    o.output = output;
    o.pack_mode = !pack_mode ? OB_PACK_MODE_CONFIG
                             : (strcmp(pack_mode, "ternary") == 0 ? OB_PACK_MODE_TERNARY : OB_PACK_MODE_BINARY);
    o.change_mode = change_mode;
    o.verify = verify;
    ob_table_precision_parse(embed, &o.embed);
    char *header = c_header ? header_path(output) : NULL;
    o.c_header = header;
    ob_size_report r;
    if (c_header && !header)
        rc = ob_cmd_fail(argv[0]);
    else if (ob_export(&o, &r))
        rc = ob_cmd_fail(argv[0]);
    else
        print_report(output, header, &r);
    free(header);
    ob_args_free(&spec, NULL);
    return rc < 0 ? 0 : rc;
}
