/*
 * test_ckpt_io.cpp -- two helpers of checkpoint I/O.
 *
 * PageAlignedFloats (common/page_vector.h), the engine's fp32 arrays: every
 * allocation starts on a page (O_DIRECT reads land in place), values given
 * to assign/resize/construction are set, and swap moves storage. The
 * BackgroundRemover (checkpoint/background_remover.h): the directory
 * disappears from its name at once, its renamed tree is gone after wait(),
 * removals queue, and a missing directory is not an error.
 */
#include "checkpoint/background_remover.h"
#include "checkpoint/files.h"
#include "common/page_vector.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

/* cmocka.h defines a fail() macro: include it after dszero's headers. */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
extern "C" {
#include <cmocka.h>
}

using namespace dsz;

static bool page_aligned(const void *p) { return reinterpret_cast<uintptr_t>(p) % 4096 == 0; }

static void test_page_aligned_floats(void **) {
    for (size_t n : {size_t(1), size_t(1023), size_t(1024), size_t(1025), size_t(3) << 20}) {
        PageAlignedFloats a(n, 1.5f);
        assert_true(page_aligned(a.data()));
        for (size_t i = 0; i < n; i += 997) assert_true(a[i] == 1.5f);
        assert_true(a[n - 1] == 1.5f);
        a.resize(n + 5000, -2.0f); /* reallocates: still aligned, old values kept, new ones set */
        assert_true(page_aligned(a.data()));
        assert_true(a[n - 1] == 1.5f && a[n] == -2.0f && a[n + 4999] == -2.0f);
        a.assign(7, 3.0f);
        assert_true(a[0] == 3.0f && a[6] == 3.0f);
    }
    std::vector<PageAlignedFloats> states;
    states.emplace_back(100, 0.25f); /* how the engine makes its optimizer states */
    assert_true(page_aligned(states[0].data()) && states[0][99] == 0.25f);
    PageAlignedFloats unset;
    unset.resize(5000); /* storage only; every element is written below before it is read */
    assert_true(page_aligned(unset.data()));
    for (float &v : unset) v = 4.0f;
    const float *storage = unset.data();
    states[0].swap(unset);
    assert_ptr_equal(states[0].data(), storage);
    assert_int_equal(states[0].size(), 5000);
    assert_true(unset.size() == 100 && unset[0] == 0.25f);
    PageAlignedFloats empty;
    assert_int_equal(empty.size(), 0);
}

static std::string listing(const std::string &dir) {
    std::string out;
    DIR *d = ::opendir(dir.c_str());
    while (struct dirent *e = d ? ::readdir(d) : nullptr)
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out += std::string(e->d_name) + " ";
    if (d) ::closedir(d);
    return out;
}

static void make_tree(const std::string &path) {
    make_dirs(path + "/sub");
    for (const char *f : {"/a", "/sub/b"}) {
        FILE *fp = std::fopen((path + f).c_str(), "w");
        assert_non_null(fp);
        std::fputs("x", fp);
        std::fclose(fp);
    }
}

static void test_background_remover(void **) {
    char tmpl[] = "/tmp/dsz_remover_XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    BackgroundRemover r;
    make_tree(dir + "/.old.tmp.1");
    make_tree(dir + "/keep");
    r.remove(dir + "/.old.tmp.1");
    assert_false(path_exists(dir + "/.old.tmp.1")); /* renamed before remove() returns */
    make_tree(dir + "/.old.tmp.1");                 /* the name is free for the next save */
    r.remove(dir + "/.old.tmp.1");                  /* waits for the first, then queues */
    r.wait();
    assert_string_equal(listing(dir).c_str(), "keep ");
    r.remove(dir + "/missing"); /* nothing to do, no error */
    {
        BackgroundRemover scoped;
        make_tree(dir + "/.other.tmp.2");
        scoped.remove(dir + "/.other.tmp.2");
    } /* the destructor waits */
    assert_string_equal(listing(dir).c_str(), "keep ");
    remove_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_aligned_floats),
        cmocka_unit_test(test_background_remover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
