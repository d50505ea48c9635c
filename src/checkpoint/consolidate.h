/*
 * consolidate.h -- a checkpoint's full weights as one safetensors file.
 *
 * DeepSpeed's zero_to_fp32.py rebuilds the model's weights from the ZeRO
 * shards by loading every shard whole. Here the manifest says where each
 * parameter lies, so the weights are streamed: parameter by parameter, in
 * pieces of at most kConsolidatePieceElements, each read (verified) from
 * the shard that holds it, converted, and appended to the output. Memory is
 * one piece plus the reader's buffers (shard_reader.h), whatever the
 * model's size. The output
 * (https://github.com/huggingface/safetensors, "format"): an 8-byte
 * little-endian header length, a JSON header naming every tensor's dtype,
 * shape and byte range, then the data, back to back, in flat order. It is
 * written to a temporary file, synced, and renamed into place.
 */
#pragma once

#include <cstddef>
#include <string>

#include "tensor/dtype.h"

namespace dsz {

constexpr size_t kConsolidatePieceElements = size_t(4) << 20;

/* Writes the weights of dir/<tag> (empty tag: dir/latest) to out_path in
 * `dtype`, from the fp32 masters. */
void consolidate_checkpoint(const std::string &dir, const std::string &tag, const std::string &out_path, DType dtype);

}  // namespace dsz
