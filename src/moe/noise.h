/*
 * noise.h -- the seeded random numbers of the MoE gate.
 *
 * DeepSpeed draws its gate noise (random token selection, Gumbel sampling,
 * multiplicative jitter) from torch's global generator. dszero takes a seed
 * instead and makes every value a pure function of (seed, stream, index):
 * a counter-based generator (SplitMix64 finalizer over the counter), so the
 * same seed gives the same routing on any rank, in any thread order, and a
 * host can replay a step exactly.
 */
#pragma once

#include <cmath>
#include <cstdint>

namespace dsz {
namespace moe {

/* Independent streams of one seed. */
enum class NoiseStream : uint64_t { token_selection = 1, gumbel = 2, jitter = 3 };

inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

inline uint64_t noise_bits(uint64_t seed, NoiseStream stream, uint64_t index) {
    return mix64(mix64(seed ^ (static_cast<uint64_t>(stream) << 56)) + index);
}

/* Uniform in [0, 1) on the float grid of 2^-24 (as torch's float uniform). */
inline float uniform01(uint64_t seed, NoiseStream stream, uint64_t index) {
    return static_cast<float>(noise_bits(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

/* Standard Gumbel(0, 1): -log(-log(u)) with u in the open interval (0, 1). */
inline double gumbel(uint64_t seed, NoiseStream stream, uint64_t index) {
    const double u = (static_cast<double>(noise_bits(seed, stream, index) >> 11) + 0.5) * 0x1p-53;
    return -std::log(-std::log(u));
}

}  // namespace moe
}  // namespace dsz
