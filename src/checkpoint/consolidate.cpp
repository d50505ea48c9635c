/* consolidate.cpp -- see consolidate.h. */
#include "checkpoint/consolidate.h"

#include <unistd.h>

#include <cstring>
#include <memory>
#include <unordered_set>

#include "checkpoint/files.h"
#include "checkpoint/format.h"
#include "checkpoint/json_util.h"
#include "checkpoint/manifest.h"
#include "checkpoint/shard_reader.h"
#include "common/error.h"
#include "tensor/convert.h"

namespace dsz {

namespace {

const char *safetensors_dtype(DType t) { return t == DType::f32 ? "F32" : t == DType::f16 ? "F16" : "BF16"; }

/* The JSON header, padded with spaces to a multiple of 8 bytes (the data
 * then starts 8-byte aligned, as the format recommends). */
std::string header_json(const Manifest &m, DType dtype) {
    JsonPtr h(cJSON_CreateObject());
    cJSON *meta = cJSON_AddObjectToObject(h.get(), "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "source", "dszero checkpoint (fp32 master weights)");
    cJSON_AddStringToObject(meta, "global_steps", std::to_string(m.global_steps).c_str());
    std::unordered_set<std::string> names;
    uint64_t at = 0;
    for (const ManifestGroup &G : m.groups)
        for (const ManifestParam &p : G.params) {
            if (p.name == "__metadata__" || !names.insert(p.name).second)
                fail(DSZ_ERR_CHECKPOINT, "%s: parameter name '%s' cannot be a safetensors tensor name (reserved or "
                                         "repeated)",
                     m.path.c_str(), p.name.c_str());
            cJSON *t = cJSON_AddObjectToObject(h.get(), p.name.c_str());
            cJSON_AddStringToObject(t, "dtype", safetensors_dtype(dtype));
            cJSON *shape = cJSON_AddArrayToObject(t, "shape");
            for (int64_t d : p.shape) cJSON_AddItemToArray(shape, cJSON_CreateNumber(static_cast<double>(d)));
            cJSON *offsets = cJSON_AddArrayToObject(t, "data_offsets");
            const uint64_t end = at + p.numel * dtype_size(dtype);
            cJSON_AddItemToArray(offsets, cJSON_CreateNumber(static_cast<double>(at)));
            cJSON_AddItemToArray(offsets, cJSON_CreateNumber(static_cast<double>(end)));
            at = end;
        }
    std::string text = json_print(h.get());
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

/* Streams one parameter's master values out, piece by piece. The shards are
 * visited in flat order (rank order, or an expert slice's files in order),
 * so one open reader at a time is enough. */
class MasterStream {
public:
    MasterStream(const Manifest &m, const std::string &cdir) : m_(m), cdir_(cdir) {}

    void read(size_t group, size_t slice, size_t flat, size_t n, float *dst) {
        const ManifestGroup &G = m_.groups[group];
        while (n > 0) {
            const size_t part = flat / G.partition;
            const int rank = m_.file_of(group, slice, part);
            const size_t in_part = flat - part * G.partition;
            const size_t take = std::min(n, G.partition - in_part);
            const ManifestArray *a = m_.array(rank, group, "master");
            if (!a)
                fail(DSZ_ERR_CHECKPOINT, "%s: shard of rank %d has no master weights for group %zu", m_.path.c_str(),
                     rank, group);
            if (rank != open_rank_) {
                reader_.reset(new ShardReader(cdir_, m_.files[static_cast<size_t>(rank)]));
                open_rank_ = rank;
            }
            reader_->read(a->offset + in_part * sizeof(float), take * sizeof(float), dst);
            flat += take;
            dst += take;
            n -= take;
        }
    }

private:
    const Manifest &m_;
    std::string cdir_;
    std::unique_ptr<ShardReader> reader_;
    int open_rank_ = -1;
};

}  // namespace

void consolidate_checkpoint(const std::string &dir, const std::string &tag, const std::string &out_path, DType dtype) {
    if (out_path.empty()) fail(DSZ_ERR_INVALID_ARGUMENT, "the output path is empty");
    const std::string cdir = resolve_checkpoint_dir(dir, tag);
    const std::string mpath = path_join(cdir, kManifestName);
    const Manifest m = parse_manifest(read_file(mpath, "checkpoint manifest"), mpath);
    const std::string header = header_json(m, dtype);

    const std::string tmp = out_path + ".tmp." + std::to_string(::getpid());
    try {
        FileWriter out(tmp);
        unsigned char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(header.size()) >> (8 * i));
        out.write(len, sizeof len);
        out.write(header.data(), header.size());
        MasterStream masters(m, cdir);
        std::vector<float> piece;
        std::vector<char> converted;
        for (size_t g = 0; g < m.groups.size(); ++g)
            for (const ManifestParam &p : m.groups[g].params)
                for (size_t done = 0; done < p.numel;) {
                    const size_t n = std::min(kConsolidatePieceElements, p.numel - done);
                    piece.resize(n);
                    masters.read(g, p.slice, p.offset + done, n, piece.data());
                    if (dtype == DType::f32) {
                        out.write(piece.data(), n * sizeof(float));
                    } else {
                        converted.resize(n * dtype_size(dtype));
                        convert_from_f32(piece.data(), converted.data(), dtype, n);
                        out.write(converted.data(), converted.size());
                    }
                    done += n;
                }
        out.close();
        publish_file(tmp, out_path);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
}

}  // namespace dsz
