/*
 * swap_pipeline.cpp -- SwapStore::pipeline, one optimizer step over swapped
 * sub-groups (see swap_store.h).
 *
 * Sub-group k is read into a slot, updated there and written back. With
 * pipeline_read, sub-group k+1 is read into a free slot while k is updated;
 * with pipeline_write, k's write is only waited for when its slot is needed
 * again (or at the end). Without a free slot a read-ahead is skipped rather
 * than waited for, so the pipeline degrades to the plain sequence with
 * fewer buffers, and never holds more than the configured ones.
 */
#include <deque>

#include "common/error.h"
#include "engine/swap_store.h"

namespace dsz {

void SwapStore::pipeline(const std::function<void(const SubGroup &, float *const *)> &update) {
    if (slots_.empty()) return;
    using Ticket = aio::IoEngine::Ticket;
    std::vector<size_t> todo;
    for (size_t k = 0; k < subs_.size(); ++k)
        if (!subs_[k].spans.empty()) todo.push_back(k);

    std::vector<bool> busy(slots_.size(), false);
    struct Pending {
        size_t slot;
        Ticket ticket;
    };
    std::deque<Pending> writes;                    /* oldest first */
    bool ahead = false;                            /* todo[i] is being read ahead */
    Pending ahead_read{0, 0};
    auto free_slot = [&]() -> long {
        for (size_t s = 0; s < busy.size(); ++s)
            if (!busy[s]) return static_cast<long>(s);
        return -1;
    };
    auto reap_writes = [&](bool block_for_one) {
        while (!writes.empty() && (block_for_one || io_->ready(writes.front().ticket))) {
            const Pending w = writes.front();
            writes.pop_front();
            io_->wait(w.ticket);
            busy[w.slot] = false;
            block_for_one = false;
        }
    };
    std::vector<float *> states(n_states_);
    try {
        for (size_t i = 0; i < todo.size(); ++i) {
            size_t slot;
            if (ahead) {
                slot = ahead_read.slot;
                ahead = false;
                io_->wait(ahead_read.ticket);
            } else {
                reap_writes(false);
                if (free_slot() < 0) reap_writes(true);
                const long f = free_slot();
                if (f < 0) fail(DSZ_ERR_INTERNAL, "NVMe swap: no buffer free for sub-group %zu", todo[i]);
                slot = static_cast<size_t>(f);
                busy[slot] = true;
                io_->wait(start(todo[i], slot, false));
            }
            if (pipeline_read_ && i + 1 < todo.size()) {
                reap_writes(false);
                const long f = free_slot();
                if (f >= 0) {
                    busy[static_cast<size_t>(f)] = true;
                    ahead_read = Pending{static_cast<size_t>(f), start(todo[i + 1], static_cast<size_t>(f), false)};
                    ahead = true;
                }
            }
            for (size_t s = 0; s < n_states_; ++s) states[s] = buffer(slot, s);
            update(subs_[todo[i]], states.data());
            const Ticket w = start(todo[i], slot, true);
            if (pipeline_write_) {
                writes.push_back(Pending{slot, w});
            } else {
                io_->wait(w);
                busy[slot] = false;
            }
        }
        while (!writes.empty()) reap_writes(true);
    } catch (...) {
        /* Buffers must outlive the transfers using them. */
        if (ahead) try { io_->wait(ahead_read.ticket); } catch (const Error &) {}
        for (const Pending &w : writes) try { io_->wait(w.ticket); } catch (const Error &) {}
        throw;
    }
}

}  // namespace dsz
