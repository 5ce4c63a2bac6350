#pragma once
// Ratings as parallel arrays (user, item, rating, timestamp) over dense 0-based indices, the id maps
// back to the source's ids (MovieLens userId / movieId), and compressed per-user / per-item views.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "p4lm/core/error.hpp"

namespace p4lm::cf {

using Index = std::int32_t;  // dense user or item index; ml-25m has 162k users and 62k movies

// External ids (any int64) <-> dense indices in order of first insertion.
class IdMap {
 public:
  Index insert(std::int64_t id) {
    const auto [it, inserted] = index_.try_emplace(id, static_cast<Index>(ids_.size()));
    if (inserted) ids_.push_back(id);
    return it->second;
  }
  std::optional<Index> find(std::int64_t id) const {
    const auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  Index at(std::int64_t id) const {
    const auto found = find(id);
    if (!found) fail<InvalidArgument>("unknown id ", id);
    return *found;
  }
  std::int64_t id(Index index) const {
    if (index < 0 || static_cast<std::size_t>(index) >= ids_.size())
      fail<InvalidArgument>("index ", index, " out of range [0, ", ids_.size(), ")");
    return ids_[static_cast<std::size_t>(index)];
  }
  std::size_t size() const noexcept { return ids_.size(); }
  const std::vector<std::int64_t>& ids() const noexcept { return ids_; }
  void reserve(std::size_t n) {
    ids_.reserve(n);
    index_.reserve(n);
  }

 private:
  std::vector<std::int64_t> ids_;
  std::unordered_map<std::int64_t, Index> index_;
};

struct Ratings {
  std::size_t n_users = 0, n_items = 0;  // index ranges (may exceed the largest index present)
  std::vector<Index> user, item;
  std::vector<float> rating;
  std::vector<std::int64_t> timestamp;  // seconds since 1970 (MovieLens); 0 where unknown

  std::size_t size() const noexcept { return user.size(); }
  bool empty() const noexcept { return user.empty(); }
  void reserve(std::size_t n) {
    user.reserve(n);
    item.reserve(n);
    rating.reserve(n);
    timestamp.reserve(n);
  }
  void add(Index u, Index i, float r, std::int64_t t = 0) {
    user.push_back(u);
    item.push_back(i);
    rating.push_back(r);
    timestamp.push_back(t);
  }
  // Copies rating k of other (same index space) to the end.
  void add_from(const Ratings& other, std::size_t k) {
    add(other.user[k], other.item[k], other.rating[k], other.timestamp[k]);
  }
  double mean() const {
    double sum = 0;
    for (float r : rating) sum += r;
    return rating.empty() ? 0.0 : sum / static_cast<double>(rating.size());
  }
  // InvalidArgument if the arrays disagree in length or an index is out of range.
  void check() const {
    const auto n = user.size();
    if (item.size() != n || rating.size() != n || timestamp.size() != n)
      fail<InvalidArgument>("ratings: arrays of unequal length (user ", n, ", item ", item.size(),
                            ", rating ", rating.size(), ", timestamp ", timestamp.size(), ")");
    for (std::size_t k = 0; k < n; ++k) {
      if (user[k] < 0 || static_cast<std::size_t>(user[k]) >= n_users)
        fail<InvalidArgument>("ratings[", k, "]: user index ", user[k], " outside [0, ", n_users, ")");
      if (item[k] < 0 || static_cast<std::size_t>(item[k]) >= n_items)
        fail<InvalidArgument>("ratings[", k, "]: item index ", item[k], " outside [0, ", n_items, ")");
      if (!std::isfinite(rating[k])) fail<InvalidArgument>("ratings[", k, "]: rating is not finite");
    }
  }
};

// Compressed sparse rows: row r's entries are cols[offsets[r] .. offsets[r+1]), in input order.
struct Csr {
  std::vector<std::int64_t> offsets{0};
  std::vector<Index> cols;
  std::vector<float> values;

  std::size_t rows() const noexcept { return offsets.size() - 1; }
  std::size_t row_size(std::size_t r) const noexcept {
    return static_cast<std::size_t>(offsets[r + 1] - offsets[r]);
  }
  std::span<const Index> cols_of(std::size_t r) const noexcept {
    return {cols.data() + offsets[r], row_size(r)};
  }
  std::span<const float> values_of(std::size_t r) const noexcept {
    return {values.data() + offsets[r], row_size(r)};
  }
};

namespace detail {
inline Csr compress(std::span<const Index> rows, std::span<const Index> cols, std::span<const float> values,
                    std::size_t n_rows) {
  Csr csr;
  csr.offsets.assign(n_rows + 1, 0);
  for (Index r : rows) ++csr.offsets[static_cast<std::size_t>(r) + 1];
  for (std::size_t r = 0; r < n_rows; ++r) csr.offsets[r + 1] += csr.offsets[r];
  csr.cols.resize(rows.size());
  csr.values.resize(rows.size());
  std::vector<std::int64_t> next(csr.offsets.begin(), csr.offsets.end() - 1);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto at = next[static_cast<std::size_t>(rows[k])]++;
    csr.cols[static_cast<std::size_t>(at)] = cols[k];
    csr.values[static_cast<std::size_t>(at)] = values[k];
  }
  return csr;
}
}  // namespace detail

// Each user's (item, rating) pairs.
inline Csr by_user(const Ratings& r) {
  return detail::compress(r.user, r.item, r.rating, r.n_users);
}
// Each item's (user, rating) pairs.
inline Csr by_item(const Ratings& r) {
  return detail::compress(r.item, r.user, r.rating, r.n_items);
}

// Number of ratings per item (popularity).
inline std::vector<std::int64_t> item_counts(const Ratings& r) {
  std::vector<std::int64_t> counts(r.n_items, 0);
  for (Index i : r.item) ++counts[static_cast<std::size_t>(i)];
  return counts;
}

}  // namespace p4lm::cf
