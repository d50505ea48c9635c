/*
 * dsz.c -- the `dsz` command: small tools around libdszero.
 *
 *   dsz report            version, features, run-time libraries
 *   dsz config FILE       validate a DeepSpeed config and print it resolved
 *   dsz consolidate DIR   a checkpoint's weights as one safetensors file
 *
 * Later subcommands join here; each lives in its own file and is listed in
 * the table below.
 */
#include <dszero.h>

#include <stdio.h>
#include <string.h>

int dsz_cmd_report(int argc, char **argv);
int dsz_cmd_consolidate(int argc, char **argv);

static int cmd_config(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dsz config FILE.json [AUTO_VALUES_JSON]\n");
        return 2;
    }
    dsz_init_options o;
    dsz_init_options_init(&o, sizeof o);
    if (argc > 2) o.auto_values = argv[2];
    char *out = NULL;
    dsz_status s = dsz_config_resolve(argv[1], &o, &out);
    if (s != DSZ_OK) {
        fprintf(stderr, "%s\n", dsz_last_error());
        return 1;
    }
    printf("%s\n", out);
    dsz_string_free(out);
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"report", dsz_cmd_report, "version, compiled-in features, libraries found at run time"},
    {"config", cmd_config, "validate a DeepSpeed config and print it fully resolved"},
    {"consolidate", dsz_cmd_consolidate, "write a checkpoint's full weights as one safetensors file"},
};

int main(int argc, char **argv) {
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
            if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: dsz COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
        fprintf(stderr, "  %-12s %s\n", commands[i].name, commands[i].help);
    return argc >= 2 && strcmp(argv[1], "--help") != 0 ? 2 : 0;
}
