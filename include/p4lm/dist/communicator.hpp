#pragma once
// Who this process is among the processes of a data-parallel job, and the collectives p4lm needs
// (sum and max all-reduce, broadcast, gather of strings, barrier). With P4LM_ENABLE_MPI (which defines
// P4LM_WITH_MPI) they are MPI's own collectives on an MPI communicator; a default-constructed Communicator is
// one process alone, rank 0 of 1, whose collectives leave the data as it is, so code written for N ranks
// compiles and runs unchanged without MPI.
//
//   p4lm::dist::Environment mpi(argc, argv);       // dist/environment.hpp: MPI_Init under mpirun
//   auto comm = p4lm::dist::world();               // MPI_COMM_WORLD, or the single process
//   comm.all_reduce_sum(std::span<float>(grads));  // every rank now holds the sum
//   if (comm.is_root()) write_metrics();
//
// Collectives must be called by every rank of the communicator in the same order (MPI's rule); the
// result of a sum is the same on every rank, its float rounding is MPI's summation order.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#if defined(P4LM_WITH_MPI)
#include <mpi.h>
#endif

#include "p4lm/core/error.hpp"

namespace p4lm::dist {

// Whether this build can talk MPI at all (P4LM_ENABLE_MPI).
#if defined(P4LM_WITH_MPI)
inline constexpr bool with_mpi = true;
#else
inline constexpr bool with_mpi = false;
#endif

class Communicator {
 public:
  // One process alone: rank 0 of 1.
  Communicator() = default;
#if defined(P4LM_WITH_MPI)
  explicit Communicator(MPI_Comm comm) : comm_(comm) {
    check(MPI_Comm_rank(comm, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm, &size_), "MPI_Comm_size");
  }
  MPI_Comm handle() const noexcept {
    return comm_;
  }
#endif

  int rank() const noexcept {
    return rank_;
  }
  int size() const noexcept {
    return size_;
  }
  bool is_root() const noexcept {
    return rank_ == 0;
  }
  bool distributed() const noexcept {
    return size_ > 1;
  }

  // Element-wise sum (max) over the ranks, in place; every rank gets the result.
  template <class T>
  void all_reduce_sum(std::span<T> data) const {
    all_reduce(data, false);
  }
  template <class T>
  void all_reduce_max(std::span<T> data) const {
    all_reduce(data, true);
  }
  template <class T>
  T sum(T value) const {
    all_reduce_sum(std::span<T>(&value, 1));
    return value;
  }
  template <class T>
  T max(T value) const {
    all_reduce_max(std::span<T>(&value, 1));
    return value;
  }

  // Root's data into every other rank's `data` (same length on every rank).
  template <class T>
  void broadcast(std::span<T> data, int root = 0) const {
    static_assert(std::is_trivially_copyable_v<T>, "Communicator::broadcast: trivially copyable elements");
#if defined(P4LM_WITH_MPI)
    if (!distributed()) return;
    for_chunks(data.size(), [&](std::size_t at, int n) {
      check(MPI_Bcast(data.data() + at, n, type<T>(), root, comm_), "MPI_Bcast");
    });
#else
    (void)data, (void)root;
#endif
  }
  template <class T>
  T broadcast_value(T value, int root = 0) const {
    broadcast(std::span<T>(&value, 1), root);
    return value;
  }
  // A string of any length (the receivers' strings are resized).
  void broadcast(std::string& s, int root = 0) const {
    if (!distributed()) return;
    const auto n = broadcast_value<std::uint64_t>(s.size(), root);
    s.resize(static_cast<std::size_t>(n));
    broadcast(std::span<char>(s.data(), s.size()), root);
  }

  // Every rank's string, in rank order, at `root` (the other ranks get an empty list); one process:
  // {s}. Rank-local state that rank 0 alone saves (PPO's share of a rollout) travels this way.
  std::vector<std::string> gather(const std::string& s, int root = 0) const {
    if (!distributed()) return {s};
    std::vector<std::string> out;
#if defined(P4LM_WITH_MPI)
    const auto n = static_cast<std::uint64_t>(s.size());
    std::vector<std::uint64_t> sizes(rank_ == root ? static_cast<std::size_t>(size_) : 0);
    check(MPI_Gather(&n, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, root, comm_), "MPI_Gather");
    std::vector<int> counts, offsets;
    std::string all;
    if (rank_ == root) {
      std::uint64_t total = 0;
      for (const auto k : sizes) {
        offsets.push_back(static_cast<int>(total)), counts.push_back(static_cast<int>(k)), total += k;
        if (total > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
          fail<InvalidArgument>("Communicator::gather: more than 2 GiB in all");
      }
      all.resize(static_cast<std::size_t>(total));
    }
    if (n > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
      fail<InvalidArgument>("Communicator::gather: a string of more than 2 GiB");
    check(MPI_Gatherv(s.data(), static_cast<int>(n), MPI_CHAR, all.data(), counts.data(), offsets.data(),
                      MPI_CHAR, root, comm_),
          "MPI_Gatherv");
    for (std::size_t k = 0; k < counts.size(); ++k)
      out.push_back(all.substr(static_cast<std::size_t>(offsets[k]), static_cast<std::size_t>(counts[k])));
#else
    (void)root;
#endif
    return out;
  }

  void barrier() const {
#if defined(P4LM_WITH_MPI)
    if (distributed()) check(MPI_Barrier(comm_), "MPI_Barrier");
#endif
  }

 private:
#if defined(P4LM_WITH_MPI)
  static void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fail<Error>(what, " failed: ", std::string(text, static_cast<std::size_t>(len)));
  }
  // MPI counts are int: larger buffers go in chunks.
  template <class F>
  static void for_chunks(std::size_t n, F&& f) {
    constexpr std::size_t chunk = std::size_t{1} << 30;
    for (std::size_t at = 0; at < n; at += chunk) f(at, static_cast<int>(std::min(chunk, n - at)));
  }
  template <class T>
  static MPI_Datatype type() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, float>)
      return MPI_FLOAT;
    else if constexpr (std::is_same_v<U, double>)
      return MPI_DOUBLE;
    else if constexpr (std::is_same_v<U, char>)
      return MPI_CHAR;
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 4)
      return MPI_INT32_T;
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 8)
      return MPI_INT64_T;
    else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 4)
      return MPI_UINT32_T;
    else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 8)
      return MPI_UINT64_T;
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 1)
      return MPI_UINT8_T;
    else
      static_assert(sizeof(U) == 0, "Communicator: no MPI datatype for this element type");
  }
#endif
  template <class T>
  void all_reduce(std::span<T> data, bool max) const {
    static_assert(std::is_arithmetic_v<T>, "Communicator: all-reduce of numbers only");
#if defined(P4LM_WITH_MPI)
    if (!distributed()) return;
    for_chunks(data.size(), [&](std::size_t at, int n) {
      check(MPI_Allreduce(MPI_IN_PLACE, data.data() + at, n, type<T>(), max ? MPI_MAX : MPI_SUM, comm_),
            "MPI_Allreduce");
    });
#else
    (void)data, (void)max;
#endif
  }

  int rank_ = 0, size_ = 1;
#if defined(P4LM_WITH_MPI)
  MPI_Comm comm_ = MPI_COMM_NULL;
#endif
};

// While a SingleProcess lives (on this thread), world() is this process alone: a part of the program
// that one rank runs by itself (a rank-0-only evaluation, a reference run in a test) builds its
// Trainer there without taking part in the job's collectives.
class SingleProcess {
 public:
  SingleProcess() : previous_(flag()) { flag() = true; }
  SingleProcess(const SingleProcess&) = delete;
  SingleProcess& operator=(const SingleProcess&) = delete;
  ~SingleProcess() { flag() = previous_; }
  static bool active() noexcept { return flag(); }

 private:
  static bool& flag() noexcept {
    thread_local bool alone = false;
    return alone;
  }
  bool previous_;
};

// The job's communicator: MPI_COMM_WORLD once MPI is initialised (dist/environment.hpp does it under
// an MPI launcher) and no SingleProcess is active, otherwise the single process. Cheap: call it where
// a communicator is needed.
inline Communicator world() {
  if (SingleProcess::active()) return Communicator();
#if defined(P4LM_WITH_MPI)
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised && !finalised) return Communicator(MPI_COMM_WORLD);
#endif
  return Communicator();
}

}  // namespace p4lm::dist
