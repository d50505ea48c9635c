/*
 * save.cpp -- Engine::save: writing a checkpoint that is never half-visible.
 *
 * Everything is written into a hidden temporary directory beside the target,
 * synced, and only then renamed into place; `latest` moves last. With
 * several ranks: rank 0 makes the directory, every rank writes its shard,
 * rank 0 collects their sizes and checksums into the manifest and commits.
 * After each phase the ranks agree (engine/agree.h), so a failure on any rank
 * stops all of them, removes the temporary directory, and leaves the
 * previous checkpoint and `latest` as they were.
 */
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "checkpoint/json_util.h"
#include "common/error.h"
#include "engine/agree.h"
#include "engine/engine.h"

namespace dsz {

void check_tag(const std::string &tag) {
    if (tag.empty() || tag == "." || tag == ".." || tag == kLatestName || tag[0] == '.' ||
        tag.find('/') != std::string::npos)
        fail(DSZ_ERR_INVALID_ARGUMENT,
             "checkpoint tag \"%s\" is not usable as a directory name (empty, '.', '..', 'latest', leading '.' "
             "or '/' are refused)",
             tag.c_str());
}

uint64_t shard_chunk_bytes() {
    const char *env = std::getenv("DSZ_CHECKPOINT_CHUNK_BYTES");
    if (!env || !*env) return kShardChunkBytes;
    char *end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (*end || v < 1)
        fail(DSZ_ERR_INVALID_ARGUMENT, "DSZ_CHECKPOINT_CHUNK_BYTES=\"%s\" is not a positive number of bytes", env);
    return v;
}

static cJSON *shape_json(const std::vector<int64_t> &shape) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t d : shape) cJSON_AddItemToArray(a, cJSON_CreateNumber(static_cast<double>(d)));
    return a;
}

/* This rank's shard: a header, then per group its master partition and each
 * optimizer state, fp32, little-endian, each starting at a multiple of
 * kShardArrayAlign; the arrays' offsets are the same on every rank. Returns
 * the shard's file name. */
std::string Engine::write_shard(const std::string &dir, uint32_t *crc, uint64_t *bytes,
                                std::vector<uint32_t> *chunk_crcs) {
    const std::string shard = shard_name(rank_);
    FileWriter w(path_join(dir, shard), shard_chunk_bytes(), /*direct=*/true);
    char header[kShardHeaderBytes] = {};
    std::memcpy(header, kShardMagic, sizeof kShardMagic);
    const uint32_t hv[4] = {static_cast<uint32_t>(kFormatMajor), static_cast<uint32_t>(kFormatMinor),
                            static_cast<uint32_t>(rank_), static_cast<uint32_t>(world_)};
    std::memcpy(header + 8, hv, sizeof hv);
    w.write(header, sizeof header);
    static const char zeros[kShardArrayAlign] = {};
    auto align = [&] { w.write(zeros, static_cast<size_t>(shard_array_offset(w.bytes()) - w.bytes())); };
    const int n_states = optimizer_ ? optimizer_->state_count() : 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
        const GroupState &G = groups_[g];
        const size_t P = layout_.groups[g].partition;
        const size_t begin = local_of(G, static_cast<size_t>(G.part) * P);
        align();
        w.write(G.master.data() + begin, P * sizeof(float));
        for (int s = 0; s < n_states; ++s) { /* in memory or swapped to NVMe */
            align();
            read_state_partition(g, s, [&](const float *v, size_t n) { w.write(v, n * sizeof(float)); });
        }
    }
    w.close();
    *crc = w.crc();
    *bytes = w.bytes();
    *chunk_crcs = w.chunk_crcs();
    return shard;
}

static cJSON *manifest_files(const std::vector<uint64_t> &info, const std::vector<uint32_t> &chunk_crcs,
                             uint64_t chunk_bytes, int world, const std::vector<std::string> &kinds,
                             const std::vector<size_t> &partitions) {
    const size_t per_rank = chunk_crcs.size() / static_cast<size_t>(world);
    cJSON *files = cJSON_CreateArray();
    for (int r = 0; r < world; ++r) {
        cJSON *jf = cJSON_CreateObject();
        cJSON_AddItemToArray(files, jf);
        cJSON_AddStringToObject(jf, "name", shard_name(r).c_str());
        cJSON_AddNumberToObject(jf, "rank", r);
        cJSON_AddNumberToObject(jf, "bytes", static_cast<double>(info[2 * static_cast<size_t>(r)]));
        cJSON_AddNumberToObject(jf, "crc32", static_cast<double>(info[2 * static_cast<size_t>(r) + 1]));
        cJSON_AddNumberToObject(jf, "chunk_bytes", static_cast<double>(chunk_bytes));
        cJSON *crcs = cJSON_AddArrayToObject(jf, "chunk_crc32");
        for (size_t c = 0; c < per_rank; ++c)
            cJSON_AddItemToArray(crcs, cJSON_CreateNumber(chunk_crcs[static_cast<size_t>(r) * per_rank + c]));
        cJSON *arrays = cJSON_AddArrayToObject(jf, "arrays");
        uint64_t off = kShardHeaderBytes;
        for (size_t g = 0; g < partitions.size(); ++g)
            for (const std::string &kind : kinds) {
                off = shard_array_offset(off);
                cJSON *a = cJSON_CreateObject();
                cJSON_AddItemToArray(arrays, a);
                cJSON_AddNumberToObject(a, "group", static_cast<double>(g));
                cJSON_AddStringToObject(a, "kind", kind.c_str());
                cJSON_AddNumberToObject(a, "offset", static_cast<double>(off));
                cJSON_AddNumberToObject(a, "count", static_cast<double>(partitions[g]));
                off += partitions[g] * sizeof(float);
            }
    }
    return files;
}

void Engine::save(const std::string &dir, const std::string &tag_in, const std::string &client_state) {
    require_registered("dsz_save");
    const std::string tag = tag_in.empty() ? "global_step" + std::to_string(global_steps_) : tag_in;
    check_tag(tag);
    JsonPtr client(cJSON_Parse(client_state.empty() ? "null" : client_state.c_str()));
    if (!client) fail(DSZ_ERR_INVALID_ARGUMENT, "dsz_save: client_state_json is not valid JSON");
    if (in_micro_ || backward_done_ || micro_steps_ % cfg_.gradient_accumulation_steps != 0)
        log_.warn("dsz_save in the middle of an accumulation window: gradients accumulated so far are not saved");

    removing_.wait(); /* the previous save's leftovers are gone before this one starts */
    int64_t pid = ::getpid();
    if (world_ > 1) comm_->broadcast(&pid, sizeof pid, 0);
    const std::string final_dir = path_join(dir, tag);
    const std::string tmp = path_join(dir, "." + tag + ".tmp." + std::to_string(pid));
    /* Runs one phase on this rank, then agrees with the others. */
    auto phase = [&](auto &&body) {
        std::string err;
        dsz_status st = DSZ_OK;
        try {
            body();
        } catch (const Error &e) {
            err = e.what();
            st = e.status();
        }
        try {
            agree(*comm_, err, DSZ_ERR_IO, "dsz_save");
        } catch (...) {
            if (rank_ == 0) remove_tree(tmp);
            throw;
        }
        if (!err.empty()) {
            if (rank_ == 0) remove_tree(tmp);
            throw Error(st, err);
        }
    };

    phase([&] {
        if (rank_ != 0) return;
        make_dirs(dir);
        remove_tree(tmp);
        make_dirs(tmp);
    });
    std::vector<uint64_t> info(2 * static_cast<size_t>(world_), 0);
    std::vector<uint32_t> my_chunks;
    const uint64_t chunk_bytes = shard_chunk_bytes();
    phase([&] {
        uint32_t crc = 0;
        uint64_t bytes = 0;
        write_shard(tmp, &crc, &bytes, &my_chunks);
        info[2 * static_cast<size_t>(rank_)] = bytes;
        info[2 * static_cast<size_t>(rank_) + 1] = crc;
    });
    /* Every rank's shard has the same size (equal partitions), hence as many chunks. */
    std::vector<uint32_t> chunks(my_chunks.size() * static_cast<size_t>(world_));
    if (world_ > 1) {
        const uint64_t mine[2] = {info[2 * static_cast<size_t>(rank_)], info[2 * static_cast<size_t>(rank_) + 1]};
        comm_->all_gather(mine, info.data(), comm::Partition::even(info.size(), world_), sizeof(uint64_t));
        comm_->all_gather(my_chunks.data(), chunks.data(), comm::Partition::even(chunks.size(), world_),
                          sizeof(uint32_t));
    } else {
        chunks = my_chunks;
    }
    phase([&] {
        if (rank_ != 0) return;
        JsonPtr m(cJSON_CreateObject());
        cJSON_AddStringToObject(m.get(), "format", kFormatName);
        cJSON *ver = cJSON_AddArrayToObject(m.get(), "format_version");
        cJSON_AddItemToArray(ver, cJSON_CreateNumber(kFormatMajor));
        cJSON_AddItemToArray(ver, cJSON_CreateNumber(kFormatMinor));
        cJSON_AddStringToObject(m.get(), "dszero_version", dsz_version());
        cJSON_AddStringToObject(m.get(), "tag", tag.c_str());
        cJSON_AddNumberToObject(m.get(), "world_size", world_);
        cJSON_AddNumberToObject(m.get(), "zero_stage", cfg_.zero.stage);
        cJSON_AddStringToObject(m.get(), "model_dtype",
                                dtype_name(params_.empty() ? DType::f32 : params_[0].host.dtype));
        cJSON *conf = cJSON_Parse(cfg_.json.c_str());
        cJSON_AddItemToObject(m.get(), "config", conf ? conf : cJSON_CreateNull());

        std::vector<std::string> kinds = {"master"};
        cJSON *opt = cJSON_AddObjectToObject(m.get(), "optimizer");
        cJSON_AddStringToObject(opt, "type", optimizer_ ? optimizer_->name() : "none");
        cJSON *snames = cJSON_AddArrayToObject(opt, "states");
        const int n_states = optimizer_ ? optimizer_->state_count() : 0;
        for (int s = 0; s < n_states; ++s) {
            cJSON_AddItemToArray(snames, cJSON_CreateString(optimizer_->state_name(s)));
            kinds.push_back(optimizer_->state_name(s));
        }

        cJSON *cnt = cJSON_AddObjectToObject(m.get(), "counters");
        cJSON_AddNumberToObject(cnt, "global_steps", static_cast<double>(global_steps_));
        cJSON_AddNumberToObject(cnt, "micro_steps", static_cast<double>(micro_steps_));
        cJSON_AddNumberToObject(cnt, "skipped_steps", static_cast<double>(skipped_steps_));
        cJSON_AddNumberToObject(cnt, "global_samples", static_cast<double>(global_samples_));
        cJSON_AddNumberToObject(cnt, "grad_norm", grad_norm_);

        const LossScalerState &ls = scaler_.state();
        cJSON *sc = cJSON_AddObjectToObject(m.get(), "loss_scaler");
        cJSON_AddNumberToObject(sc, "scale", ls.scale);
        cJSON_AddNumberToObject(sc, "iter", static_cast<double>(ls.iter));
        cJSON_AddNumberToObject(sc, "last_overflow", static_cast<double>(ls.last_overflow));
        cJSON_AddNumberToObject(sc, "hysteresis_left", static_cast<double>(ls.hysteresis_left));

        cJSON *sch = cJSON_AddObjectToObject(m.get(), "scheduler");
        cJSON_AddStringToObject(sch, "type", cfg_.scheduler.type_name.c_str());
        cJSON_AddNumberToObject(sch, "last_batch_iteration", static_cast<double>(sched_t_));

        cJSON *groups = cJSON_AddArrayToObject(m.get(), "groups");
        std::vector<size_t> partitions;
        for (size_t g = 0; g < groups_.size(); ++g) {
            const GroupState &G = groups_[g];
            const GroupLayout &L = layout_.groups[g];
            partitions.push_back(L.partition);
            cJSON *jg = cJSON_CreateObject();
            cJSON_AddItemToArray(groups, jg);
            cJSON_AddStringToObject(jg, "name", G.name.c_str());
            cJSON_AddNumberToObject(jg, "base_lr", G.base_lr);
            cJSON_AddNumberToObject(jg, "weight_decay", G.weight_decay);
            cJSON_AddNumberToObject(jg, "step_count", static_cast<double>(G.step_count));
            cJSON_AddNumberToObject(jg, "numel", static_cast<double>(L.numel));
            cJSON_AddNumberToObject(jg, "padded", static_cast<double>(L.padded));
            cJSON_AddNumberToObject(jg, "partition", static_cast<double>(L.partition));
            /* The parameters of one slice; an expert slice has other names (the
             * experts of another expert-parallel rank) and the same shapes. */
            auto params_json = [&](cJSON *parent, const std::vector<std::string> *names) {
                cJSON *jp = cJSON_AddArrayToObject(parent, "params");
                for (size_t k = 0; k < L.params.size(); ++k) {
                    const ParamRecord &p = params_[L.params[k]];
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddItemToArray(jp, o);
                    cJSON_AddStringToObject(o, "name", names ? (*names)[k].c_str() : p.name.c_str());
                    cJSON_AddItemToObject(o, "shape", shape_json(p.host.shape));
                    cJSON_AddStringToObject(o, "dtype", dtype_name(p.host.dtype));
                    cJSON_AddNumberToObject(o, "offset", static_cast<double>(L.offsets[k]));
                    cJSON_AddNumberToObject(o, "numel", static_cast<double>(p.host.numel));
                }
            };
            if (G.ep_size == 0) {
                params_json(jg, nullptr);
                continue;
            }
            cJSON_AddNumberToObject(jg, "ep_size", G.ep_size);
            cJSON *slices = cJSON_AddArrayToObject(jg, "slices");
            const Domain &D = domains_[G.domain];
            for (size_t e = 0; e < G.slice_names.size(); ++e) {
                cJSON *js = cJSON_CreateObject();
                cJSON_AddItemToArray(slices, js);
                cJSON *files = cJSON_AddArrayToObject(js, "files");
                for (int r : D.slice_files[e]) cJSON_AddItemToArray(files, cJSON_CreateNumber(r));
                params_json(js, &G.slice_names[e]);
            }
        }
        cJSON_AddItemToObject(m.get(), "files", manifest_files(info, chunks, chunk_bytes, world_, kinds, partitions));
        cJSON_AddItemToObject(m.get(), "client_state", client.release());

        char *text = cJSON_Print(m.get());
        if (!text) fail(DSZ_ERR_OUT_OF_MEMORY, "cannot serialise the checkpoint manifest");
        const std::string manifest(text);
        cJSON_free(text);
        FileWriter mw(path_join(tmp, kManifestName));
        mw.write(manifest.data(), manifest.size());
        mw.close();
        fsync_dir(tmp);
        const bool replaced = commit_dir(tmp, final_dir);
        write_file_atomic(path_join(dir, kLatestName), tag);
        if (replaced) removing_.remove(tmp); /* the checkpoint it replaced, out of sight */
    });
    log_.logf(DSZ_LOG_INFO, "saved checkpoint %s (global step %lld)", final_dir.c_str(),
              static_cast<long long>(global_steps_));
}

}  // namespace dsz
