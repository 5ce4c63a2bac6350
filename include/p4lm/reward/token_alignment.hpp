#pragma once
// Token alignment: what the Precision reward reads from a (premise, hypothesis) pair. Each hypothesis
// token is aligned to its most similar premise token (cosine of frozen contextual MiniLM states, as
// BERTScore aligns tokens) and described by one feature row:
//   [ h_t·√d,  (h_t ⊙ p_a(t))·d,  max cosine,  id of t in the premise,  a bigram with t in the premise,
//     share of the 3 tokens before t in the premise, of the 3 after, of the whole sentence ]
// h_t says what the token is (a year, a genre word, filler), the next three whether the premise
// supports it, the last three whether its neighbourhood is about this movie at all: an unsupported
// year right after the premise's title contradicts it, the same year after another movie's title
// (a sentence linking the pitch to the user's favourites) does not.
// A small head scores each row as evidence of contradiction, c_t, and the sentence's entailment logit
// is a soft minimum over its tokens, z = -log Σ_t exp(c_t): one unsupported year or genre word is
// enough to contradict, however many supported words surround it (the decomposable-attention idea of
// Parikh et al. 2016, over a frozen encoder). Pooled sentence vectors could not do this: they say
// what a sentence is about, not whether its year matches the premise's.
// The soft minimum's mirror, log_sum_exp_groups, is the soft maximum Personalization pools its
// sentences' scores with.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <unordered_set>
#include <vector>

#include "p4lm/core/error.hpp"

namespace p4lm::reward {

// One text's tokens without [CLS]/[SEP]: WordPiece ids and unit-length contextual states (n, d).
struct TokenStates {
  std::vector<std::int32_t> ids;
  std::vector<float> unit;
  std::size_t size() const noexcept { return ids.size(); }
};

inline constexpr std::size_t alignment_extra_features = 6;
inline constexpr std::size_t alignment_width(std::size_t d) {
  return 2 * d + alignment_extra_features;
}

// Appends one row per hypothesis token (one zero row for a hypothesis without tokens, so every
// sentence has a score) to `out`; returns the number of rows appended.
inline std::size_t append_alignment_rows(const TokenStates& premise, const TokenStates& hypothesis,
                                         std::size_t d, std::vector<float>& out) {
  const std::size_t width = alignment_width(d), n = hypothesis.size();
  if (premise.unit.size() != premise.size() * d || hypothesis.unit.size() != n * d)
    fail<InvalidArgument>("append_alignment_rows: token states are not (tokens, ", d, ")");
  if (n == 0) {
    out.resize(out.size() + width, 0.f);
    return 1;
  }
  const auto bigram = [](std::int32_t a, std::int32_t b) {
    return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
  };
  std::unordered_set<std::int32_t> ids(premise.ids.begin(), premise.ids.end());
  std::unordered_set<std::uint64_t> bigrams;
  for (std::size_t s = 1; s < premise.size(); ++s) bigrams.insert(bigram(premise.ids[s - 1], premise.ids[s]));
  std::vector<float> known(n);
  for (std::size_t t = 0; t < n; ++t) known[t] = ids.count(hypothesis.ids[t]) ? 1.f : 0.f;
  const auto share = [&](std::size_t begin, std::size_t end) {  // of known[begin, end), 0 if empty
    float sum = 0;
    for (std::size_t u = begin; u < end; ++u) sum += known[u];
    return end > begin ? sum / float(end - begin) : 0.f;
  };
  const std::size_t window = 3;
  const float sentence = share(0, n);
  const float root = std::sqrt(float(d)), scale = float(d);
  for (std::size_t t = 0; t < n; ++t) {
    const float* h = hypothesis.unit.data() + t * d;
    float best = premise.size() ? -std::numeric_limits<float>::infinity() : 0.f;
    const float* match = nullptr;
    for (std::size_t s = 0; s < premise.size(); ++s) {
      const float* p = premise.unit.data() + s * d;
      float dot = 0;
      for (std::size_t k = 0; k < d; ++k) dot += h[k] * p[k];
      if (dot > best) best = dot, match = p;
    }
    const std::size_t at = out.size();
    out.resize(at + width, 0.f);
    float* row = out.data() + at;
    for (std::size_t k = 0; k < d; ++k) row[k] = h[k] * root;
    if (match)
      for (std::size_t k = 0; k < d; ++k) row[d + k] = h[k] * match[k] * scale;
    const auto id = hypothesis.ids[t];
    const bool in_bigram = (t > 0 && bigrams.count(bigram(hypothesis.ids[t - 1], id))) ||
                           (t + 1 < n && bigrams.count(bigram(id, hypothesis.ids[t + 1])));
    row[2 * d] = best;
    row[2 * d + 1] = known[t];
    row[2 * d + 2] = in_bigram ? 1.f : 0.f;
    row[2 * d + 3] = share(t > window ? t - window : 0, t);
    row[2 * d + 4] = share(t + 1, std::min(n, t + 1 + window));
    row[2 * d + 5] = sentence;
  }
  return n;
}

// Sentence i owns token rows offsets[i] .. offsets[i+1]-1; z_i = -log Σ_t exp(c_t) (a soft minimum of
// -c, computed stably from the largest c).
template <class T>
std::vector<T> soft_min_logits(const std::vector<T>& c, const std::vector<std::size_t>& offsets) {
  if (offsets.empty() || offsets.back() != c.size())
    fail<InvalidArgument>("soft_min_logits: offsets end at ", offsets.empty() ? 0 : offsets.back(), ", ",
                          c.size(), " token scores");
  std::vector<T> z(offsets.size() - 1);
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
    if (offsets[i + 1] <= offsets[i])
      fail<InvalidArgument>("soft_min_logits: sentence ", i, " has no tokens");
    const T m = *std::max_element(c.begin() + long(offsets[i]), c.begin() + long(offsets[i + 1]));
    T sum = 0;
    for (std::size_t t = offsets[i]; t < offsets[i + 1]; ++t) sum += std::exp(c[t] - m);
    z[i] = -(m + std::log(sum));
  }
  return z;
}

// r_i = log Σ_t exp(c_t) over group i's rows offsets[i] .. offsets[i+1]-1: a soft maximum, what
// Personalization makes of its sentences' scores (the negation of soft_min_logits).
template <class T>
std::vector<T> log_sum_exp_groups(const std::vector<T>& c, const std::vector<std::size_t>& offsets) {
  auto r = soft_min_logits(c, offsets);
  for (auto& v : r) v = -v;
  return r;
}

// dc_t = dr_i · softmax(c over group i)_t, given r from log_sum_exp_groups.
template <class T>
std::vector<T> log_sum_exp_groups_backward(const std::vector<T>& dr, const std::vector<T>& c,
                                           const std::vector<T>& r, const std::vector<std::size_t>& offsets) {
  std::vector<T> dc(c.size(), T(0));
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i)
    for (std::size_t t = offsets[i]; t < offsets[i + 1]; ++t) dc[t] = dr[i] * std::exp(c[t] - r[i]);
  return dc;
}

// dc_t = -dz_i · softmax(c over sentence i)_t, given z from soft_min_logits (z = -log_sum_exp_groups).
template <class T>
std::vector<T> soft_min_logits_backward(const std::vector<T>& dz, const std::vector<T>& c,
                                        const std::vector<T>& z, const std::vector<std::size_t>& offsets) {
  std::vector<T> dr(dz.size()), r(z.size());
  for (std::size_t i = 0; i < dz.size(); ++i) dr[i] = -dz[i];
  for (std::size_t i = 0; i < z.size(); ++i) r[i] = -z[i];
  return log_sum_exp_groups_backward(dr, c, r, offsets);
}

}  // namespace p4lm::reward
