#pragma once
// The CF embedding widths p4lm's stages are compiled for, listed once. A width read at run time (a
// --dim flag, the width of a cf.safetensors file) reaches the compile-time Embeddings<Dim> and
// CFAdapter<Dim> through with_cf_dim, so every stage (CF training, data build, SFT, pitch writing,
// `p4lm run`) accepts exactly these widths and refuses any other with the same message:
//
//   p4lm::cf::with_cf_dim(cf::embeddings_dim(path), [&](auto d) {
//     constexpr int Dim = decltype(d)::value;
//     auto e = cf::load_embeddings<Dim>(path);
//   });
//   // width 128: UsageError "CF embedding width 128 is not supported (compiled widths: 16, 32, 64)"
//
// Each width instantiates the whole SFT and generation stack once per model architecture, so the
// list is short; adding one here adds it everywhere.

#include <array>
#include <utility>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::cf {

using CompiledDims = DimList<16, 32, 64>;

template <int... Dims>
constexpr std::array<int, sizeof...(Dims)> dims_of(DimList<Dims...>) noexcept {
  return {Dims...};
}
inline constexpr auto compiled_dims = dims_of(CompiledDims{});  // the same list, as values

// Calls f(std::integral_constant<int, Dim>{}) for dim == Dim; UsageError for any width not compiled.
template <class F>
decltype(auto) with_cf_dim(int dim, F&& f) {
  return CompiledDims::visit<UsageError>(dim, std::forward<F>(f), "CF embedding width");
}

// The same check without a call: throws the same UsageError for a width that is not compiled.
inline void check_cf_dim(int dim) {
  with_cf_dim(dim, [](auto) {});
}

}  // namespace p4lm::cf
