#pragma once
// Temperature, top-k and top-p sampling of logits rows on the device: the Generator's sampler when
// the model runs on CUDA (model/generate.hpp has the CPU sampler, sample_token, and the semantics).
// Only the chosen tokens and their log-probabilities come back to the host, not the (B, V) logits.
//
// Per row, all queued on the current context's stream with thrust (no synchronisation until the one
// copy of the results):
//   1. thrust::stable_sort_by_key of the logits, descending, with their indices: ties keep the lower
//      index first, the CPU's order; the first entry is the maximum and the greedy token.
//   2. thrust::transform_inclusive_scan of exp((x - max) / temperature) in double, in the order the CPU
//      draws in: sorted when a top-k or top-p cut applies, index order when none does.
//   3. one thread finds the cut (top-k: the first k; top-p: the smallest prefix whose share of the
//      top-k mass reaches top_p) by binary search on that scan, and the first entry whose cumulative
//      mass exceeds u · (kept mass).
// u is the row's uniform draw, made on the host by the caller from the same Rng stream the CPU
// sampler uses (Generator: Rng(seed, b), one draw per sampled token), so given the same logits CPU
// and CUDA pick the same token. The sums are parallel scans instead of the CPU's left-to-right loop:
// they can differ in the last bits, so a draw within ~1e-13 (relative) of a boundary between two
// tokens, or a top-p share within that of top_p, may go the other way; logits with NaN are not
// supported (the sort's order is undefined for them).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <cuda_runtime.h>
#include <thrust/functional.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/scan.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/system/cuda/execution_policy.h>
#include <thrust/system_error.h>
#include <thrust/transform_scan.h>

#include "p4lm/backend/cuda/common.cuh"
#include "p4lm/backend/cuda/tensor.cuh"

namespace p4lm::cuda {

// What the draw needs from SamplingOptions (model/generate.hpp), which lives above this layer.
struct SampleSettings {
  double temperature = 1.0;  // <= 0: greedy (first maximum)
  std::size_t top_k = 0;     // 0: no top-k cut
  double top_p = 1.0;        // 1: no nucleus cut
};

namespace detail {

// thrust's temporary storage from the stream-ordered allocator (cudaMalloc would synchronise).
class StreamAllocator {
 public:
  using value_type = char;
  explicit StreamAllocator(cudaStream_t stream) : stream_(stream) {}
  char* allocate(std::ptrdiff_t n) {
    void* p = nullptr;
    P4LM_CUDA_CHECK(cudaMallocAsync(&p, static_cast<std::size_t>(n), stream_));
    return static_cast<char*>(p);
  }
  void deallocate(char* p, std::size_t) { (void)cudaFreeAsync(p, stream_); }

 private:
  cudaStream_t stream_;
};

// exp((x - max) · inv_t) in double, max read from the device (the first sorted key).
struct ScaledExp {
  const float* max;
  double inv_t;
  __device__ double operator()(float x) const { return exp((double(x) - double(*max)) * inv_t); }
};
struct ShiftedExpF {  // the same at temperature 1 in float, for the float log-probability
  const float* max;
  __device__ float operator()(float x) const { return expf(x - *max); }
};
// Our own plus: thrust::plus is libcu++'s cuda::std::plus, and a kernel named after it makes `cuda::`
// ambiguous in nvcc's host stub of any file that says `using namespace p4lm` (p4lm::cuda).
template <class T>
struct Sum {
  __device__ T operator()(T a, T b) const { return a + b; }
};

// First i in [0, n) with a[i] > v (a nondecreasing); n when none.
template <class T>
__device__ std::size_t first_above(const T* a, std::size_t n, T v) {
  std::size_t lo = 0, hi = n;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (a[mid] > v)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// One thread: the cut, the draw and the log-probability of one row (see the header comment).
struct SelectToken {
  const float* row;          // the row's logits, index order
  const float* keys;         // sorted descending
  const std::int32_t* vals;  // their indices
  const double* cum;         // inclusive scan of exp((x - max) / T), draw order, all V entries
  const float* cum_f;        // inclusive scan of expf(x - max), sorted order (float log-prob only)
  std::size_t V;
  bool greedy, index_order, float_logprob;
  std::size_t top_k;
  double top_p, u, inv_t;
  std::int32_t* pick_out;
  float* logprob_out;

  __device__ void operator()(std::size_t) const {
    std::int32_t pick = vals[0];
    if (!greedy) {
      std::size_t n = (top_k > 0 && top_k < V) ? top_k : V;
      if (top_p < 1.0 && !index_order) {
        // The CPU's loop: keep entries until their share of the first n's mass reaches top_p.
        const double total = cum[n - 1];
        std::size_t lo = 0, hi = n;  // first i with cum[i] / total >= top_p
        while (lo < hi) {
          const std::size_t mid = lo + (hi - lo) / 2;
          if (cum[mid] / total >= top_p)
            hi = mid;
          else
            lo = mid + 1;
        }
        n = lo < n ? lo + 1 : n;
      }
      const double target = u * cum[n - 1];
      std::size_t i = first_above(cum, n, target);
      if (i >= n) i = n - 1;  // rounding: the CPU also falls back to the last kept entry
      pick = index_order ? static_cast<std::int32_t>(i) : vals[i];
    }
    const float mx = keys[0], x = row[pick];
    if (float_logprob)
      *logprob_out = (x - mx) - logf(cum_f[V - 1]);
    else
      *logprob_out = static_cast<float>((double(x) - double(mx)) * inv_t - log(cum[V - 1]));
    *pick_out = pick;
  }
};

}  // namespace detail

// Samples one token per row of (B, V) logits on the device. Buffers grow once and are reused, so a
// Generator keeps one TokenSampler for all its steps.
class TokenSampler {
 public:
  // logits (B, V) on the device; uniforms[b]: row b's draw in [0, 1) (read unless greedy); rows with
  // active[b] == false are skipped (picks[b], logprobs[b] untouched). Waits for the stream once, to
  // copy the B results back.
  void sample(const TensorView<backend::cuda, float>& logits, const SampleSettings& s,
              std::span<const double> uniforms, std::span<const std::uint8_t> active,
              std::span<std::int32_t> picks, std::span<float> logprobs) {
    if (logits.rank() != 2)
      fail<ShapeError>("TokenSampler: logits: expected rank 2 (B, V), got ", logits.shape());
    const std::size_t B = logits.dim(0), V = logits.dim(1);
    if (uniforms.size() < B || active.size() < B || picks.size() < B || logprobs.size() < B)
      fail<InvalidArgument>("TokenSampler: ", B, " rows but uniforms/active/picks/logprobs of sizes ",
                            uniforms.size(), "/", active.size(), "/", picks.size(), "/", logprobs.size());
    if (B == 0) return;
    if (V == 0) fail<InvalidArgument>("TokenSampler: logits have no columns (V = 0)");
    const bool greedy = s.temperature <= 0;
    const double inv_t = greedy ? 1.0 : 1.0 / s.temperature;
    const bool cut = (s.top_k > 0 && s.top_k < V) || s.top_p < 1.0;
    const bool float_logprob = inv_t == 1.0;  // as the CPU: log-probs at T = 1 in float
    keys_.resize(Shape{V});
    vals_.resize(Shape{V});
    cum_.resize(Shape{V});
    cum_f_.resize(Shape{V});
    out_picks_.resize(Shape{B});
    out_logprobs_.resize(Shape{B});
    const cudaStream_t stream = current_context().stream();
    detail::StreamAllocator alloc(stream);
    const auto policy = thrust::cuda::par_nosync(alloc).on(stream);
    try {
      for (std::size_t b = 0; b < B; ++b) {
        if (!active[b]) continue;
        const float* row = logits.data() + b * V;
        P4LM_CUDA_CHECK(
            cudaMemcpyAsync(keys_.data(), row, V * sizeof(float), cudaMemcpyDeviceToDevice, stream));
        thrust::sequence(policy, vals_.data(), vals_.data() + V);
        thrust::stable_sort_by_key(policy, keys_.data(), keys_.data() + V, vals_.data(),
                                   thrust::greater<float>());
        const float* mx = keys_.data();
        if (!greedy) {
          // The draw's order: the CPU walks the sorted entries after a cut, the index order without.
          const float* order = cut ? keys_.data() : row;
          thrust::transform_inclusive_scan(policy, order, order + V, cum_.data(),
                                           detail::ScaledExp{mx, inv_t}, detail::Sum<double>{});
        }
        if (float_logprob)
          thrust::transform_inclusive_scan(policy, keys_.data(), keys_.data() + V, cum_f_.data(),
                                           detail::ShiftedExpF{mx}, detail::Sum<float>{});
        detail::for_each_index(
            "TokenSampler", 1,
            detail::SelectToken{row, keys_.data(), vals_.data(), cum_.data(), cum_f_.data(), V, greedy, !cut,
                                float_logprob, s.top_k, s.top_p, greedy ? 0.0 : uniforms[b], inv_t,
                                out_picks_.data() + b, out_logprobs_.data() + b});
      }
    } catch (const thrust::system_error& e) {
      fail<BackendError>("TokenSampler: thrust failed: ", e.what());
    }
    host_picks_.resize(B);
    host_logprobs_.resize(B);
    P4LM_CUDA_CHECK(cudaMemcpyAsync(host_picks_.data(), out_picks_.data(), B * sizeof(std::int32_t),
                                    cudaMemcpyDeviceToHost, stream));
    P4LM_CUDA_CHECK(cudaMemcpyAsync(host_logprobs_.data(), out_logprobs_.data(), B * sizeof(float),
                                    cudaMemcpyDeviceToHost, stream));
    P4LM_CUDA_CHECK(cudaStreamSynchronize(stream));
    current_context().check_device_error();
    for (std::size_t b = 0; b < B; ++b) {
      if (!active[b]) continue;
      picks[b] = host_picks_[b];
      logprobs[b] = host_logprobs_[b];
    }
  }

 private:
  Tensor<backend::cuda, float> keys_;
  Tensor<backend::cuda, std::int32_t> vals_;
  Tensor<backend::cuda, double> cum_;
  Tensor<backend::cuda, float> cum_f_;
  Tensor<backend::cuda, std::int32_t> out_picks_;
  Tensor<backend::cuda, float> out_logprobs_;
  std::vector<std::int32_t> host_picks_;
  std::vector<float> host_logprobs_;
};

}  // namespace p4lm::cuda
