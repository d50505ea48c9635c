/*
 * pieces.h -- how an update is cut into pieces and spread over threads.
 *
 * Spans can be long (a whole tensor), so each is cut into pieces of at most
 * kPieceElems elements, at boundaries that depend only on the spans; the
 * pool hands pieces to threads in any order. Every kernel works piece by
 * piece and per-piece partial sums are combined in piece order, so results
 * are bitwise the same whatever the thread count.
 */
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "optim/kernels.h"
#include "optim/optimizer.h"

namespace dsz {

/* 32768 fp32 elements: 128 KiB per array, long enough for the hardware
 * prefetchers, short enough to balance two or more threads. */
constexpr size_t kPieceElems = 32768;

struct PieceRef {
    size_t span;    /* index in *args.spans */
    size_t begin;   /* first element, in the flat group buffer */
    size_t n;
    size_t tensor;  /* index in *args.tensors (cut_spans_by_tensor only) */
};

/* Checks what every update needs (non-null arrays, known dtypes, step >= 1);
 * a failure is a bug in the caller: DSZ_ERR_INTERNAL naming `who`. */
void check_update_args(const UpdateArgs &a, int state_count, const char *who);

std::vector<PieceRef> cut_spans(const std::vector<Span> &spans);

/* As cut_spans, also finding each span's tensor; a span outside every
 * tensor or straddling two is DSZ_ERR_INTERNAL. */
std::vector<PieceRef> cut_spans_by_tensor(const std::vector<Span> &spans,
                                          const std::vector<Segment> &tensors, const char *who);

/* The kernel's view of a piece: every pointer offset to its first element. */
optk::Piece make_piece(const UpdateArgs &a, const PieceRef &r, int state_count);

/* Output-dtype index of a piece's kernel: the out dtype, or kOutNone. */
int out_index(const UpdateArgs &a, const PieceRef &r);

/* fn(i) for every i in [0, count), on the pool when there is one. */
void for_each_piece(ThreadPool *pool, size_t count, const std::function<void(size_t)> &fn);

}  // namespace dsz
