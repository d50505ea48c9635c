/*
 * consolidate.c -- `dsz consolidate`, dszero's zero_to_fp32.py.
 *
 *   dsz consolidate DIR [--tag TAG] [--dtype fp32|fp16|bf16] -o OUT.safetensors
 *
 * Writes a checkpoint's full weights as one safetensors file through
 * dsz_consolidate (streaming, verified, atomic; see include/dszero.h).
 */
#include <dszero.h>

#include <stdio.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: dsz consolidate DIR [--tag TAG] [--dtype fp32|fp16|bf16] -o OUT.safetensors\n"
                    "  DIR      the directory dsz_save wrote into (holding `latest` and the tags)\n"
                    "  --tag    the checkpoint to read (default: the one DIR/latest names)\n"
                    "  --dtype  the weights' type in the output (default fp32, from the fp32 masters)\n");
    return 2;
}

int dsz_cmd_consolidate(int argc, char **argv) {
    const char *dir = NULL, *tag = NULL, *out = NULL, *dtype = "fp32";
    for (int i = 1; i < argc; ++i) {
        const int has_value = i + 1 < argc;
        if (strcmp(argv[i], "--tag") == 0 && has_value) tag = argv[++i];
        else if (strcmp(argv[i], "--dtype") == 0 && has_value) dtype = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && has_value) out = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else return usage();
    }
    if (!dir || !out) return usage();
    DLDataType dt = {kDLFloat, 32, 1};
    if (strcmp(dtype, "fp16") == 0) dt.bits = 16;
    else if (strcmp(dtype, "bf16") == 0) { dt.code = kDLBfloat; dt.bits = 16; }
    else if (strcmp(dtype, "fp32") != 0) {
        fprintf(stderr, "dsz consolidate: --dtype must be fp32, fp16 or bf16, not '%s'\n", dtype);
        return 2;
    }
    if (dsz_consolidate(dir, tag, out, dt) != DSZ_OK) {
        fprintf(stderr, "%s\n", dsz_last_error());
        return 1;
    }
    printf("wrote %s (%s)\n", out, dtype);
    return 0;
}
