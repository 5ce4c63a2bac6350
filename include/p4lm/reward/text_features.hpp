#pragma once
// Frozen MiniLM features shared by the four rewards: the encoder runs in inference mode (encode()),
// never trained, and every distinct text or pair is encoded once (cache), so training a head over
// thousands of examples and scoring a PPO batch pay only for the texts they have not seen.
//
//   auto f = std::make_shared<reward::TextFeatures>("models/all-minilm-l6-v2");
//   auto e = f->single({"a pitch"});              // (n, 384) unit vectors, sentence-transformers' embed
//   auto x = f->pair_features(premises, hyps);    // (n, 3·384): cross-encoding, e_a⊙e_b, |e_a-e_b|
//   auto a = f->alignment(premises, hyps);        // token-alignment rows (token_alignment.hpp)
//
// pair_features is a frozen cross-encoder: [CLS] a [SEP] b [SEP] with token types 0/1 through the
// same encoder (attention mixes the two texts), pooled as sentence-transformers pools, next to the two
// bi-encoder interaction terms that make "is b stated by a" easy for a small head to read.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor_view.hpp"
#include "p4lm/model/bert_encoder.hpp"
#include "p4lm/reward/token_alignment.hpp"

namespace p4lm::reward {

class TextFeatures {
 public:
  explicit TextFeatures(const std::filesystem::path& model_dir, std::size_t pair_max_length = 160)
      : dir_(model_dir), enc_(model_dir), pair_max_(pair_max_length) {}

  std::size_t dim() const noexcept { return enc_.dim(); }
  const std::filesystem::path& model_dir() const noexcept { return dir_; }
  std::size_t batch_size = 32;

  // (n, dim) embeddings of single texts.
  std::vector<float> single(const std::vector<std::string>& texts) {
    std::vector<std::string> todo;
    for (const auto& t : texts)
      if (!singles_.count(t)) todo.push_back(t);
    dedupe(todo);
    if (!todo.empty()) {
      const auto e = enc_.embed(todo, batch_size);
      for (std::size_t i = 0; i < todo.size(); ++i)
        singles_.emplace(todo[i],
                         std::vector<float>(e.begin() + long(i * dim()), e.begin() + long((i + 1) * dim())));
    }
    std::vector<float> out;
    out.reserve(texts.size() * dim());
    for (const auto& t : texts) {
      const auto& v = singles_.at(t);
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }

  // (n, dim) pooled, normalised cross-encodings of (a[i], b[i]).
  std::vector<float> cross(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    if (a.size() != b.size())
      fail<InvalidArgument>("TextFeatures::cross: ", a.size(), " firsts, ", b.size(), " seconds");
    std::vector<std::size_t> todo;
    std::unordered_map<std::string, bool> queued;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto k = key(a[i], b[i]);
      if (!pairs_.count(k) && queued.emplace(k, true).second) todo.push_back(i);
    }
    auto& tok = enc_.tokenizer();
    for (std::size_t s = 0; s < todo.size(); s += batch_size) {
      std::vector<text::WordPieceEncoding> rows;
      for (std::size_t i = s; i < std::min(todo.size(), s + batch_size); ++i)
        rows.push_back(tok.encode_pair(a[todo[i]], b[todo[i]], pair_max_));
      auto batch = tok.pad(rows);
      const TensorView<backend::cpu, std::int32_t> ids(batch.ids.data(), Shape{batch.batch, batch.length});
      const TensorView<backend::cpu, std::int32_t> types(batch.type_ids.data(),
                                                         Shape{batch.batch, batch.length});
      const TensorView<backend::cpu, std::int32_t> lengths(batch.lengths.data(), Shape{batch.batch});
      const auto emb = enc_.encoder().encode({.ids = ids, .type_ids = types, .lengths = lengths});
      for (std::size_t r = 0; r < rows.size(); ++r) {
        const auto i = todo[s + r];
        pairs_.emplace(key(a[i], b[i]),
                       std::vector<float>(emb.data() + r * dim(), emb.data() + (r + 1) * dim()));
      }
    }
    std::vector<float> out;
    out.reserve(a.size() * dim());
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto& v = pairs_.at(key(a[i], b[i]));
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }

  // (n, 3·dim): [cross(a, b), e_a ⊙ e_b, |e_a - e_b|].
  std::vector<float> pair_features(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    const auto c = cross(a, b), ea = single(a), eb = single(b);
    const std::size_t d = dim();
    std::vector<float> out(a.size() * 3 * d);
    for (std::size_t i = 0; i < a.size(); ++i) {
      float* o = out.data() + i * 3 * d;
      for (std::size_t k = 0; k < d; ++k) {
        o[k] = c[i * d + k] * std::sqrt(float(d));
        o[d + k] = ea[i * d + k] * eb[i * d + k] * float(d);  // ~unit scale per element
        o[2 * d + k] = std::fabs(ea[i * d + k] - eb[i * d + k]) * std::sqrt(float(d));
      }
    }
    return out;
  }

  // Token states of each text (cached; special tokens dropped), in batches of batch_size.
  std::vector<const TokenStates*> tokens(const std::vector<std::string>& texts) {
    std::vector<std::string> todo;
    for (const auto& t : texts)
      if (!tokens_.count(t)) todo.push_back(t);
    dedupe(todo);
    // Batches of similar lengths pad less (the premises run from 40 to 250 tokens).
    std::stable_sort(todo.begin(), todo.end(),
                     [](const auto& a, const auto& b) { return a.size() < b.size(); });
    auto& tok = enc_.tokenizer();
    const std::size_t d = dim();
    for (std::size_t s = 0; s < todo.size(); s += batch_size) {
      const auto chunk = std::span<const std::string>(todo).subspan(s, std::min(batch_size, todo.size() - s));
      auto batch = tok.encode_batch(chunk);
      const TensorView<backend::cpu, std::int32_t> ids(batch.ids.data(), Shape{batch.batch, batch.length});
      const TensorView<backend::cpu, std::int32_t> types(batch.type_ids.data(),
                                                         Shape{batch.batch, batch.length});
      const TensorView<backend::cpu, std::int32_t> lengths(batch.lengths.data(), Shape{batch.batch});
      enc_.encoder().encode({.ids = ids, .type_ids = types, .lengths = lengths});
      const float* hidden = enc_.encoder().hidden().data();
      for (std::size_t r = 0; r < chunk.size(); ++r) {
        TokenStates ts;
        const std::size_t len = std::size_t(batch.lengths[r]);
        for (std::size_t t = 1; t + 1 < len; ++t) {  // drop [CLS] and [SEP]
          ts.ids.push_back(batch.ids[r * batch.length + t]);
          const float* h = hidden + (r * batch.length + t) * d;
          double norm = 0;
          for (std::size_t k = 0; k < d; ++k) norm += double(h[k]) * h[k];
          const float inv = norm > 0 ? float(1 / std::sqrt(norm)) : 0.f;
          for (std::size_t k = 0; k < d; ++k) ts.unit.push_back(h[k] * inv);
        }
        tokens_.emplace(chunk[r], std::move(ts));
      }
    }
    std::vector<const TokenStates*> out;
    for (const auto& t : texts) out.push_back(&tokens_.at(t));
    return out;
  }

  // Token-alignment rows of (premise[i], hypothesis[i]) (reward/token_alignment.hpp), pair i owning
  // rows offsets[i] .. offsets[i+1]-1.
  struct Alignment {
    std::vector<float> rows;
    std::vector<std::size_t> offsets;
  };
  Alignment alignment(const std::vector<std::string>& premise, const std::vector<std::string>& hypothesis) {
    if (premise.size() != hypothesis.size())
      fail<InvalidArgument>("TextFeatures::alignment: ", premise.size(), " premises, ", hypothesis.size(),
                            " hypotheses");
    const auto p = tokens(premise), h = tokens(hypothesis);
    Alignment a;
    a.offsets.push_back(0);
    for (std::size_t i = 0; i < premise.size(); ++i)
      a.offsets.push_back(a.offsets.back() + append_alignment_rows(*p[i], *h[i], dim(), a.rows));
    return a;
  }

 private:
  static std::string key(const std::string& a, const std::string& b) { return a + '\x1f' + b; }
  static void dedupe(std::vector<std::string>& v) {
    std::unordered_map<std::string, bool> seen;
    std::vector<std::string> out;
    for (auto& s : v)
      if (seen.emplace(s, true).second) out.push_back(std::move(s));
    v = std::move(out);
  }

  std::filesystem::path dir_;
  SentenceEncoder enc_;
  std::size_t pair_max_;
  std::unordered_map<std::string, std::vector<float>> singles_, pairs_;
  std::unordered_map<std::string, TokenStates> tokens_;
};

}  // namespace p4lm::reward
