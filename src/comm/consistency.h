/*
 * consistency.h -- catching ranks that disagree before they deadlock.
 *
 * The engine registers the same parameters on every rank; when one rank
 * differs (a missing layer, another shape or dtype), the collectives that
 * follow would hang or mix up data. These checks compare digests across the
 * communicator (one small all_gather) and, only when they differ, gather
 * enough to name the first difference. Every rank throws the same
 * DSZ_ERR_INVALID_ARGUMENT, so none is left waiting. Collective.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace dsz {
namespace comm {

/* 64-bit digest of bytes (not cryptographic). */
uint64_t digest(const void *bytes, size_t n, uint64_t seed = 0);

/* Throws when `bytes` differ across ranks, naming `what` and which ranks
 * agree with which. */
void check_consistent(Communicator &comm, const std::string &what, const void *bytes, size_t n);

/* Throws when the lists differ across ranks: the message names `what`, the
 * item counts if they differ, and the first differing item as each group of
 * ranks has it (items are short descriptions, e.g. "layer.0.weight float32
 * [1024, 1024]"). */
void check_consistent(Communicator &comm, const std::string &what, const std::vector<std::string> &items);

/* Every rank's `text`, in rank order. Collective. */
std::vector<std::string> all_gather_text(Communicator &comm, const std::string &text);

/* Throws when two ranks have the same item (e.g. MoE expert parameter
 * names, which must differ across an expert-parallel group). Every rank
 * must pass as many items; the message names `what`, the two ranks and the
 * item where this rank has it. */
void check_distinct(Communicator &comm, const std::string &what, const std::vector<std::string> &items);

}  // namespace comm
}  // namespace dsz
