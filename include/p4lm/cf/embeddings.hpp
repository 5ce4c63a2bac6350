#pragma once
// What a CF model hands to the rest of p4lm: user and item factor matrices whose width Dim is a
// compile-time constant (CFAdapter<Dim> must match it), biases and the global mean, so that
//   predict(u, i) = global_mean + user_bias[u] + item_bias[i] + users[u] . items[i].
// Saved as safetensors (atomically) with tensors user_factors [U, Dim], item_factors [I, Dim],
// user_bias [U], item_bias [I], global_mean [1], user_ids [U] and item_ids [I] (I64, the source's ids;
// absent when unknown), and metadata format=p4lm.cf.embeddings, dim=<Dim> plus the caller's entries.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/io/safetensors.hpp"

namespace p4lm::cf {

template <int Dim>
struct Embeddings {
  static_assert(Dim > 0, "Embeddings<Dim>: Dim must be positive");
  static constexpr int dim = Dim;

  xt::xtensor<float, 2> users = xt::xtensor<float, 2>::from_shape({0, Dim});  // [n_users, Dim]
  xt::xtensor<float, 2> items = xt::xtensor<float, 2>::from_shape({0, Dim});  // [n_items, Dim]
  xt::xtensor<float, 1> user_bias = xt::xtensor<float, 1>::from_shape({0});   // [n_users]
  xt::xtensor<float, 1> item_bias = xt::xtensor<float, 1>::from_shape({0});   // [n_items]
  float global_mean = 0.0f;
  std::vector<std::int64_t> user_ids, item_ids;  // source ids by index, or empty
  std::map<std::string, std::string> metadata;   // model name, config, split: saved with the file

  Embeddings() = default;
  // All zeros.
  Embeddings(std::size_t n_users, std::size_t n_items)
      : users(xt::zeros<float>({n_users, std::size_t{Dim}})),
        items(xt::zeros<float>({n_items, std::size_t{Dim}})),
        user_bias(xt::zeros<float>({n_users})),
        item_bias(xt::zeros<float>({n_items})) {}

  std::size_t n_users() const noexcept { return users.shape()[0]; }
  std::size_t n_items() const noexcept { return items.shape()[0]; }

  std::span<const float> user(Index u) const noexcept {
    return {users.data() + static_cast<std::size_t>(u) * Dim, Dim};
  }
  std::span<const float> item(Index i) const noexcept {
    return {items.data() + static_cast<std::size_t>(i) * Dim, Dim};
  }

  float predict(Index u, Index i) const noexcept {
    const float* p = users.data() + static_cast<std::size_t>(u) * Dim;
    const float* q = items.data() + static_cast<std::size_t>(i) * Dim;
    float dot = 0.0f;
    for (int d = 0; d < Dim; ++d) dot += p[d] * q[d];
    return global_mean + user_bias(static_cast<std::size_t>(u)) + item_bias(static_cast<std::size_t>(i)) +
           dot;
  }

  // Ranking scores of every item for user u (predict minus the terms constant across items).
  void score_items(Index u, std::span<float> out) const noexcept {
    const float* p = users.data() + static_cast<std::size_t>(u) * Dim;
    const std::size_t n = n_items();
    for (std::size_t i = 0; i < n; ++i) {
      const float* q = items.data() + i * Dim;
      float dot = 0.0f;
      for (int d = 0; d < Dim; ++d) dot += p[d] * q[d];
      out[i] = item_bias(i) + dot;
    }
  }

  // ShapeError if the parts disagree.
  void check() const {
    if (users.shape()[1] != Dim || items.shape()[1] != Dim)
      fail<ShapeError>("Embeddings<", Dim, ">: factor widths ", users.shape()[1], " and ", items.shape()[1]);
    if (user_bias.size() != n_users() || item_bias.size() != n_items())
      fail<ShapeError>("Embeddings<", Dim, ">: ", n_users(), " users / ", n_items(),
                       " items but biases of size ", user_bias.size(), " / ", item_bias.size());
    if ((!user_ids.empty() && user_ids.size() != n_users()) ||
        (!item_ids.empty() && item_ids.size() != n_items()))
      fail<ShapeError>("Embeddings<", Dim, ">: id lists of size ", user_ids.size(), " / ", item_ids.size(),
                       " for ", n_users(), " users / ", n_items(), " items");
  }
};

// Writes the embeddings as safetensors; the file appears only once complete.
template <int Dim>
void save_embeddings(const Embeddings<Dim>& e, const std::filesystem::path& path) {
  e.check();
  const auto U = static_cast<std::int64_t>(e.n_users()), I = static_cast<std::int64_t>(e.n_items());
  const float mean[1] = {e.global_mean};
  std::vector<io::SafetensorsEntry> entries{
      io::tensor_f32("user_factors", {U, Dim}, std::span<const float>(e.users.data(), e.users.size())),
      io::tensor_f32("item_factors", {I, Dim}, std::span<const float>(e.items.data(), e.items.size())),
      io::tensor_f32("user_bias", {U}, std::span<const float>(e.user_bias.data(), e.user_bias.size())),
      io::tensor_f32("item_bias", {I}, std::span<const float>(e.item_bias.data(), e.item_bias.size())),
      io::tensor_f32("global_mean", {1}, std::span<const float>(mean, 1))};
  if (!e.user_ids.empty())
    entries.push_back(
        {"user_ids", io::Dtype::I64, {U}, std::as_bytes(std::span<const std::int64_t>(e.user_ids))});
  if (!e.item_ids.empty())
    entries.push_back(
        {"item_ids", io::Dtype::I64, {I}, std::as_bytes(std::span<const std::int64_t>(e.item_ids))});
  auto metadata = e.metadata;
  metadata["format"] = "p4lm.cf.embeddings";
  metadata["dim"] = std::to_string(Dim);
  io::save_safetensors(path, entries, metadata);
}

// The Dim a saved file was written with (to pick the Embeddings<Dim> to load at run time).
inline int embeddings_dim(const std::filesystem::path& path) {
  const auto file = io::SafetensorsFile::open(path);
  const auto& shape = file.at("user_factors").shape;
  if (shape.size() != 2) throw ParseError(path, 0, "user_factors", "expected a matrix");
  return static_cast<int>(shape[1]);
}

// Embedding widths are compile-time constants (Embeddings<Dim>, CFAdapter<Dim>), so a width read at
// run time picks one of a fixed list of instantiations:
//   cf::DimList<16, 32, 64>::visit(cf::embeddings_dim(path), [&](auto d) { ... decltype(d)::value ... },
//                                  "CF embedding width");
// calls f(std::integral_constant<int, D>{}) for D == dim; any other width throws Error naming `what`
// and the supported widths. Each tool lists the widths it compiles (each one costs compile time).
template <int... Dims>
struct DimList {
  static_assert(sizeof...(Dims) > 0, "DimList: list at least one width");

  static bool contains(int dim) noexcept { return ((dim == Dims) || ...); }

  template <class Error = InvalidArgument, class F>
  static decltype(auto) visit(int dim, F&& f, std::string_view what = "CF embedding width") {
    return visit_from<Error, Dims...>(dim, f, what);
  }

 private:
  template <class Error, int D, int... Rest, class F>
  static decltype(auto) visit_from(int dim, F& f, std::string_view what) {
    if (dim == D) return f(std::integral_constant<int, D>{});
    if constexpr (sizeof...(Rest) > 0) {
      return visit_from<Error, Rest...>(dim, f, what);
    } else {
      std::string supported;
      ((supported += (supported.empty() ? "" : ", ") + std::to_string(Dims)), ...);
      fail<Error>(what, " ", dim, " is not supported (compiled widths: ", supported, ")");
    }
  }
};

// Loads embeddings saved by save_embeddings; ShapeError if the file's width is not Dim.
template <int Dim>
Embeddings<Dim> load_embeddings(const std::filesystem::path& path) {
  const auto file = io::SafetensorsFile::open(path);
  const auto& uf = file.at("user_factors");
  const auto& itf = file.at("item_factors");
  if (uf.shape.size() != 2 || itf.shape.size() != 2)
    fail<ShapeError>(path.string(), ": user_factors and item_factors must be matrices");
  const auto U = uf.shape[0], I = itf.shape[0];
  const std::int64_t want_u[2] = {U, Dim}, want_i[2] = {I, Dim}, want_ub[1] = {U}, want_ib[1] = {I},
                     one[1] = {1};
  file.expect("user_factors", want_u);
  file.expect("item_factors", want_i);
  file.expect("user_bias", want_ub);
  file.expect("item_bias", want_ib);
  file.expect("global_mean", one);
  Embeddings<Dim> e(static_cast<std::size_t>(U), static_cast<std::size_t>(I));
  auto copy = [&](const char* name, auto& dst) {
    const auto values = file.read_f32(name);
    std::copy(values.begin(), values.end(), dst.begin());
  };
  copy("user_factors", e.users);
  copy("item_factors", e.items);
  copy("user_bias", e.user_bias);
  copy("item_bias", e.item_bias);
  e.global_mean = file.read_f32("global_mean")[0];
  if (file.contains("user_ids")) {
    file.expect("user_ids", want_ub);
    e.user_ids = file.read_i64("user_ids");
  }
  if (file.contains("item_ids")) {
    file.expect("item_ids", want_ib);
    e.item_ids = file.read_i64("item_ids");
  }
  e.metadata = file.metadata();
  e.metadata.erase("format");
  e.metadata.erase("dim");
  e.check();
  return e;
}

}  // namespace p4lm::cf
