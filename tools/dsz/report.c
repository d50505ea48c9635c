/*
 * report.c -- `dsz report`, dszero's ds_report.
 *
 * Prints the library's version and the features compiled in, then looks for
 * the libraries those features use, as the dynamic loader would find them
 * now (dlopen), and asks each for its version. Nothing here links against
 * those libraries, so the report also works where they are missing.
 */
#define _GNU_SOURCE
#include <dszero.h>

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

static const char *yes_no(uint32_t f, uint32_t bit) { return (f & bit) ? "[YES]" : "[NO] "; }

/* Opens the first soname that loads; prints where it was found. */
static void *open_lib(const char *label, const char *const *sonames) {
    for (; *sonames; ++sonames) {
        void *h = dlopen(*sonames, RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        struct link_map *lm = NULL;
        const char *where = *sonames;
        if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && *lm->l_name) where = lm->l_name;
        printf("  %-10s %s\n", label, where);
        return h;
    }
    printf("  %-10s not found\n", label);
    return NULL;
}

static void report_cjson(void) {
    static const char *const names[] = {"libcjson.so.1", "libcjson.so", NULL};
    void *h = open_lib("cJSON", names);
    const char *(*ver)(void) = h ? (const char *(*)(void))dlsym(h, "cJSON_Version") : NULL;
    if (ver) printf("             version %s\n", ver());
}

static void report_zlib(void) {
    static const char *const names[] = {"libz.so.1", "libz.so", NULL};
    void *h = open_lib("zlib", names);
    const char *(*ver)(void) = h ? (const char *(*)(void))dlsym(h, "zlibVersion") : NULL;
    if (ver) printf("             version %s\n", ver());
}

static void report_mpi(void) {
    static const char *const names[] = {"libmpi.so.40", "libmpi.so.12", "libmpi.so", NULL};
    void *h = open_lib("MPI", names);
    int (*ver)(char *, int *) = h ? (int (*)(char *, int *))dlsym(h, "MPI_Get_library_version") : NULL;
    if (ver) {
        char buf[8192] = {0};
        int len = 0;
        if (ver(buf, &len) == 0) {
            char *nl = strchr(buf, '\n');
            if (nl) *nl = 0;
            printf("             %s\n", buf);
        }
    }
}

static void report_aio(void) {
    static const char *const names[] = {"libaio.so.1t64", "libaio.so.1", "libaio.so", NULL};
    open_lib("libaio", names);
}

static void report_cuda(void) {
    static const char *const rt[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so", NULL};
    void *h = open_lib("CUDA", rt);
    if (h) {
        int (*rtv)(int *) = (int (*)(int *))dlsym(h, "cudaRuntimeGetVersion");
        int (*drv)(int *) = (int (*)(int *))dlsym(h, "cudaDriverGetVersion");
        int r = 0, d = 0;
        if (rtv && rtv(&r) == 0) printf("             runtime %d.%d\n", r / 1000, (r % 1000) / 10);
        if (drv && drv(&d) == 0)
            printf("             driver %s\n", d ? "present" : "none (no GPU driver on this machine)");
    }
    static const char *const nc[] = {"libnccl.so.2", "libnccl.so", NULL};
    void *n = open_lib("NCCL", nc);
    int (*ncv)(int *) = n ? (int (*)(int *))dlsym(n, "ncclGetVersion") : NULL;
    int v = 0;
    if (ncv && ncv(&v) == 0) printf("             version %d.%d.%d\n", v / 10000, (v % 10000) / 100, v % 100);
}

int dsz_cmd_report(int argc, char **argv) {
    (void)argc;
    (void)argv;
    const uint32_t f = dsz_features();
    printf("dszero %s (header %d.%d.%d)\n", dsz_version(), DSZ_VERSION_MAJOR, DSZ_VERSION_MINOR,
           DSZ_VERSION_PATCH);
    printf("\nfeatures compiled in:\n");
    printf("  %s MPI communicator\n", yes_no(f, DSZ_FEATURE_MPI));
    printf("  %s NCCL communicator\n", yes_no(f, DSZ_FEATURE_NCCL));
    printf("  %s CUDA kernels\n", yes_no(f, DSZ_FEATURE_CUDA));
    printf("  %s libaio NVMe offload\n", yes_no(f, DSZ_FEATURE_AIO));
    printf("  %s AVX2 CPU kernels\n", yes_no(f, DSZ_FEATURE_AVX2));
    printf("  %s AVX-512 CPU kernels\n", yes_no(f, DSZ_FEATURE_AVX512));
    printf("\nCPU: AVX2 %s, AVX-512F %s, F16C %s\n", __builtin_cpu_supports("avx2") ? "yes" : "no",
           __builtin_cpu_supports("avx512f") ? "yes" : "no", __builtin_cpu_supports("f16c") ? "yes" : "no");
    printf("\nlibraries found at run time:\n");
    report_cjson();
    report_zlib();
    report_mpi();
    report_aio();
    report_cuda();
    return 0;
}
