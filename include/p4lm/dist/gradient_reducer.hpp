#pragma once
// Averages the gradients of a parameter list over the ranks of a Communicator, so that every replica
// takes the same optimizer step (data parallelism): the trainable gradients are packed into one flat
// buffer of at most bucket_bytes at a time, each bucket is summed over the ranks by one MPI_Allreduce,
// and the sums are scaled by 1/size as they are unpacked. A few large all-reduces instead of one per
// tensor (a model has hundreds, most small), and a buffer that stays bounded for large models.
//
//   p4lm::dist::GradientReducer<float> reduce(p4lm::dist::world());
//   loss(model, my_shard); reduce.average(model.parameters()); optimizer.step(model.parameters(), lr);
//
// Frozen parameters (trainable false) are skipped: every rank freezes the same ones. Single process:
// average() returns at once. The sum's float rounding is MPI's order; the reduced gradient equals
// the single-process gradient of the union of the ranks' batches to that rounding.

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "p4lm/dist/communicator.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm::dist {

template <class T = float>
class GradientReducer {
 public:
  explicit GradientReducer(Communicator comm = world(), std::size_t bucket_bytes = std::size_t{16} << 20)
      : comm_(comm), bucket_(std::max<std::size_t>(bucket_bytes / sizeof(T), 1)) {}

  const Communicator& communicator() const noexcept { return comm_; }
  std::size_t bucket_elements() const noexcept { return bucket_; }

  // Every trainable gradient becomes the mean over the ranks. Returns the number of values reduced
  // (0 on a single process).
  std::size_t average(std::span<Parameter<T>> params) {
    if (!comm_.distributed()) return 0;
    const T scale = T(1) / static_cast<T>(comm_.size());
    buffer_.resize(bucket_);
    std::size_t filled = 0, total = 0;
    // (parameter, offset within it, count) pieces of the bucket being filled
    struct Piece {
      Parameter<T>* p;
      std::size_t at, n;
    };
    std::vector<Piece> pieces;
    auto flush = [&] {
      if (filled == 0) return;
      comm_.all_reduce_sum(std::span<T>(buffer_.data(), filled));
      std::size_t k = 0;
      for (const auto& piece : pieces) {
        auto g = piece.p->grad.span();
        for (std::size_t i = 0; i < piece.n; ++i) g[piece.at + i] = buffer_[k++] * scale;
      }
      total += filled, filled = 0, pieces.clear();
    };
    for (auto& p : params) {
      if (!p.trainable) continue;
      const auto g = p.grad.span();
      for (std::size_t at = 0; at < g.size();) {
        const std::size_t n = std::min(g.size() - at, bucket_ - filled);
        std::copy_n(g.begin() + static_cast<std::ptrdiff_t>(at), n,
                    buffer_.begin() + static_cast<std::ptrdiff_t>(filled));
        pieces.push_back({&p, at, n});
        filled += n, at += n;
        if (filled == bucket_) flush();
      }
    }
    flush();
    return total;
  }

  // Values average() reduces for this parameter list (its trainable gradients).
  static std::size_t reduced_size(std::span<const Parameter<T>> params) {
    std::size_t n = 0;
    for (const auto& p : params)
      if (p.trainable) n += p.grad.numel();
    return n;
  }

 private:
  Communicator comm_;
  std::size_t bucket_;
  std::vector<T> buffer_;
};

// Root's parameter values (frozen ones too) into every rank: the replicas start identical whatever
// each rank's initialisation did.
template <class T>
void broadcast_parameters(const Communicator& comm, std::span<Parameter<T>> params, int root = 0) {
  if (!comm.distributed()) return;
  for (auto& p : params) comm.broadcast(p.value.span(), root);
}

}  // namespace p4lm::dist
