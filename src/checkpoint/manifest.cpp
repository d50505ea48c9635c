/* manifest.cpp -- see manifest.h. */
#include "checkpoint/manifest.h"

#include <cstring>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "checkpoint/json_util.h"
#include "common/error.h"

namespace dsz {

const ManifestArray *Manifest::array(int rank, size_t group, const std::string &kind) const {
    if (rank < 0 || static_cast<size_t>(rank) >= files.size()) return nullptr;
    for (const ManifestArray &a : files[static_cast<size_t>(rank)].arrays)
        if (a.group == group && a.kind == kind) return &a;
    return nullptr;
}

static uint64_t json_size(const cJSON *obj, const char *key, const std::string &where) {
    const int64_t v = json_int(obj, key, where);
    if (v < 0) fail(DSZ_ERR_CHECKPOINT, "%s: field \"%s\" is negative", where.c_str(), key);
    return static_cast<uint64_t>(v);
}

/* One slice's parameters, appended to G.params; checks they fill numel. */
static void parse_params(const cJSON *list, const std::string &wg, size_t slice, ManifestGroup &G) {
    size_t next = 0;
    for (const cJSON *o = list->child; o; o = o->next) {
        ManifestParam p;
        p.slice = slice;
        p.name = json_string(o, "name", wg);
        const std::string wp = wg + " parameter '" + p.name + "'";
        for (const cJSON *d = json_array(o, "shape", wp)->child; d; d = d->next) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0)
                fail(DSZ_ERR_CHECKPOINT, "%s: shape is malformed", wp.c_str());
            p.shape.push_back(static_cast<int64_t>(d->valuedouble));
        }
        p.dtype = json_string(o, "dtype", wp);
        p.offset = json_size(o, "offset", wp);
        p.numel = json_size(o, "numel", wp);
        size_t n = 1;
        for (int64_t d : p.shape) n *= static_cast<size_t>(d);
        if (n != p.numel || p.offset != next)
            fail(DSZ_ERR_CHECKPOINT, "%s: offset %zu and numel %zu do not follow the layout", wp.c_str(),
                 p.offset, p.numel);
        next += p.numel;
        G.params.push_back(std::move(p));
    }
    if (next != G.numel)
        fail(DSZ_ERR_CHECKPOINT, "%s: the parameters hold %zu elements, numel says %zu", wg.c_str(), next, G.numel);
}

/* An expert group's slices: ep_size of them, each with its files (together
 * every rank once) and its parameters. */
static void parse_slices(const cJSON *jg, const std::string &wg, int world_size, ManifestGroup &G) {
    std::vector<bool> seen(static_cast<size_t>(world_size), false);
    for (const cJSON *js = json_array(jg, "slices", wg)->child; js; js = js->next) {
        const size_t slice = G.slice_files.size();
        const std::string ws = wg + " slice " + std::to_string(slice);
        std::vector<int> files;
        for (const cJSON *f = json_array(js, "files", ws)->child; f; f = f->next) {
            if (!cJSON_IsNumber(f) || f->valuedouble < 0 || f->valuedouble >= world_size ||
                seen[static_cast<size_t>(f->valuedouble)])
                fail(DSZ_ERR_CHECKPOINT, "%s: files lists a rank outside the world size %d or held twice", ws.c_str(),
                     world_size);
            seen[static_cast<size_t>(f->valuedouble)] = true;
            files.push_back(static_cast<int>(f->valuedouble));
        }
        if (files.size() != static_cast<size_t>(world_size / G.ep_size))
            fail(DSZ_ERR_CHECKPOINT, "%s: %zu files for %d ranks per expert-data-parallel group", ws.c_str(),
                 files.size(), world_size / G.ep_size);
        G.slice_files.push_back(files);
        parse_params(json_array(js, "params", ws), ws, slice, G);
    }
    if (G.slice_files.size() != static_cast<size_t>(G.ep_size))
        fail(DSZ_ERR_CHECKPOINT, "%s: %zu slices for ep_size %d", wg.c_str(), G.slice_files.size(), G.ep_size);
}

static void parse_groups(const cJSON *m, Manifest &out) {
    const std::string &w = out.path;
    const cJSON *groups = json_array(m, "groups", w);
    for (const cJSON *jg = groups->child; jg; jg = jg->next) {
        ManifestGroup G;
        const std::string wg = w + " group " + std::to_string(out.groups.size());
        G.name = json_string(jg, "name", wg);
        G.base_lr = json_number(jg, "base_lr", wg);
        G.weight_decay = json_number(jg, "weight_decay", wg);
        G.step_count = json_int(jg, "step_count", wg);
        G.numel = json_size(jg, "numel", wg);
        G.padded = json_size(jg, "padded", wg);
        G.partition = json_size(jg, "partition", wg);
        if (cJSON_GetObjectItemCaseSensitive(jg, "ep_size")) {
            const int64_t ep = json_int(jg, "ep_size", wg);
            if (ep < 1 || out.world_size % ep != 0)
                fail(DSZ_ERR_CHECKPOINT, "%s: ep_size %lld does not divide world size %d", wg.c_str(),
                     static_cast<long long>(ep), out.world_size);
            G.ep_size = static_cast<int>(ep);
            parse_slices(jg, wg, out.world_size, G);
        } else {
            parse_params(json_array(jg, "params", wg), wg, 0, G);
        }
        const size_t parts = G.slice_files.empty() ? static_cast<size_t>(out.world_size) : G.slice_files[0].size();
        if (G.padded < G.numel || G.partition * parts != G.padded)
            fail(DSZ_ERR_CHECKPOINT, "%s: numel %zu, padded %zu and partition %zu do not fit %zu partitions",
                 wg.c_str(), G.numel, G.padded, G.partition, parts);
        out.groups.push_back(std::move(G));
    }
}

static void parse_files(const cJSON *m, Manifest &out) {
    const std::string &w = out.path;
    out.files.resize(static_cast<size_t>(out.world_size));
    std::vector<bool> seen(out.files.size(), false);
    for (const cJSON *jf = json_array(m, "files", w)->child; jf; jf = jf->next) {
        ManifestFile f;
        f.name = json_string(jf, "name", w);
        const std::string wf = w + " file " + f.name;
        if (f.name.empty() || f.name.find('/') != std::string::npos || f.name[0] == '.')
            fail(DSZ_ERR_CHECKPOINT, "%s: not a plain file name", wf.c_str());
        const int64_t rank = json_int(jf, "rank", wf);
        if (rank < 0 || rank >= out.world_size || seen[static_cast<size_t>(rank)])
            fail(DSZ_ERR_CHECKPOINT, "%s: rank %lld is outside the world size %d or listed twice", wf.c_str(),
                 static_cast<long long>(rank), out.world_size);
        f.rank = static_cast<int>(rank);
        f.bytes = json_size(jf, "bytes", wf);
        f.crc32 = static_cast<uint32_t>(json_size(jf, "crc32", wf));
        if (cJSON_GetObjectItemCaseSensitive(jf, "chunk_bytes")) {
            f.chunk_bytes = json_size(jf, "chunk_bytes", wf);
            const cJSON *crcs = json_array(jf, "chunk_crc32", wf);
            for (const cJSON *c = crcs->child; c; c = c->next) {
                if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble > 4294967295.0)
                    fail(DSZ_ERR_CHECKPOINT, "%s: chunk_crc32 holds a value that is not a CRC-32", wf.c_str());
                f.chunk_crc32.push_back(static_cast<uint32_t>(c->valuedouble));
            }
            const uint64_t chunks = f.chunk_bytes ? (f.bytes + f.chunk_bytes - 1) / f.chunk_bytes : 0;
            if (f.chunk_bytes == 0 || f.chunk_crc32.size() != chunks)
                fail(DSZ_ERR_CHECKPOINT, "%s: %zu chunk checksums for %llu bytes in chunks of %llu", wf.c_str(),
                     f.chunk_crc32.size(), static_cast<unsigned long long>(f.bytes),
                     static_cast<unsigned long long>(f.chunk_bytes));
        }
        for (const cJSON *a = json_array(jf, "arrays", wf)->child; a; a = a->next) {
            ManifestArray arr;
            arr.group = json_size(a, "group", wf);
            arr.kind = json_string(a, "kind", wf);
            arr.offset = json_size(a, "offset", wf);
            arr.count = json_size(a, "count", wf);
            if (arr.group >= out.groups.size() || arr.count != out.groups[arr.group].partition ||
                arr.offset < kShardHeaderBytes || arr.offset + arr.count * sizeof(float) > f.bytes)
                fail(DSZ_ERR_CHECKPOINT, "%s: array %s of group %zu does not fit the layout", wf.c_str(),
                     arr.kind.c_str(), arr.group);
            f.arrays.push_back(std::move(arr));
        }
        seen[static_cast<size_t>(rank)] = true;
        out.files[static_cast<size_t>(rank)] = std::move(f);
    }
    for (size_t r = 0; r < seen.size(); ++r)
        if (!seen[r]) fail(DSZ_ERR_CHECKPOINT, "%s: no shard is listed for rank %zu", w.c_str(), r);
}

Manifest parse_manifest(const std::string &text, const std::string &path) {
    JsonPtr m(cJSON_Parse(text.c_str()));
    if (!m || !cJSON_IsObject(m.get())) fail(DSZ_ERR_CHECKPOINT, "%s is not valid JSON", path.c_str());
    Manifest out;
    out.path = path;
    const std::string &w = path;
    const std::string format = json_string(m.get(), "format", w);
    if (format != kFormatName)
        fail(DSZ_ERR_CHECKPOINT, "%s: not a dszero checkpoint (format \"%s\")", w.c_str(), format.c_str());
    const cJSON *ver = json_array(m.get(), "format_version", w);
    const cJSON *major = cJSON_GetArrayItem(ver, 0), *minor = cJSON_GetArrayItem(ver, 1);
    if (!cJSON_IsNumber(major) || !cJSON_IsNumber(minor))
        fail(DSZ_ERR_CHECKPOINT, "%s: format_version is malformed", w.c_str());
    if (major->valueint != kFormatMajor)
        fail(DSZ_ERR_CHECKPOINT, "%s: format major version %d is unknown to this dszero (%s reads version %d)",
             w.c_str(), major->valueint, dsz_version(), kFormatMajor);
    out.major = major->valueint;
    out.minor = minor->valueint;
    const int64_t world = json_int(m.get(), "world_size", w);
    if (world < 1 || world > (1 << 24)) fail(DSZ_ERR_CHECKPOINT, "%s: world_size %lld", w.c_str(), static_cast<long long>(world));
    out.world_size = static_cast<int>(world);
    out.zero_stage = static_cast<int>(json_int(m.get(), "zero_stage", w));
    out.model_dtype = json_string(m.get(), "model_dtype", w);

    const cJSON *opt = json_field(m.get(), "optimizer", w);
    out.optimizer_type = json_string(opt, "type", w);
    for (const cJSON *s = json_array(opt, "states", w)->child; s; s = s->next) {
        if (!cJSON_IsString(s)) fail(DSZ_ERR_CHECKPOINT, "%s: optimizer.states holds a non-string", w.c_str());
        out.states.push_back(s->valuestring);
    }
    const cJSON *cnt = json_field(m.get(), "counters", w);
    out.global_steps = json_int(cnt, "global_steps", w);
    out.micro_steps = json_int(cnt, "micro_steps", w);
    out.skipped_steps = json_int(cnt, "skipped_steps", w);
    out.global_samples = json_int(cnt, "global_samples", w);
    out.grad_norm = json_number(cnt, "grad_norm", w);
    const cJSON *sc = json_field(m.get(), "loss_scaler", w);
    out.loss_scaler.scale = json_number(sc, "scale", w);
    out.loss_scaler.iter = json_int(sc, "iter", w);
    out.loss_scaler.last_overflow = json_int(sc, "last_overflow", w);
    out.loss_scaler.hysteresis_left = json_int(sc, "hysteresis_left", w);
    out.last_batch_iteration = json_int(json_field(m.get(), "scheduler", w), "last_batch_iteration", w);
    const cJSON *client = cJSON_GetObjectItemCaseSensitive(m.get(), "client_state");
    if (client) out.client_state = json_print(client);

    parse_groups(m.get(), out);
    parse_files(m.get(), out);
    return out;
}

std::string resolve_checkpoint_dir(const std::string &dir, const std::string &tag_in) {
    std::string tag = tag_in;
    if (tag.empty()) {
        const std::string latest = path_join(dir, kLatestName);
        if (!path_exists(latest))
            fail(DSZ_ERR_NOT_FOUND, "no checkpoint tag given and %s does not exist", latest.c_str());
        tag = read_file(latest, "checkpoint pointer");
        while (!tag.empty() && (tag.back() == '\n' || tag.back() == '\r' || tag.back() == ' ')) tag.pop_back();
        if (tag.empty()) fail(DSZ_ERR_CHECKPOINT, "%s is empty", latest.c_str());
    }
    check_tag(tag);
    return path_join(dir, tag);
}

}  // namespace dsz
