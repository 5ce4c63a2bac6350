#pragma once
// Backend tags. A backend is an empty type naming where tensors live and which specialisations of
// the op list (docs/architecture.md, "Ops") run. The tags are always declared, so CPU-only code can
// name backend::cuda in templates; its implementation only exists in nvcc-compiled translation units.

#include <concepts>

namespace p4lm::backend {

struct cpu {
  static constexpr const char* name = "cpu";
  static constexpr bool is_device = false;  // tensor memory is host memory
};

struct cuda {
  static constexpr const char* name = "cuda";
  static constexpr bool is_device = true;  // tensor memory is device memory
};

}  // namespace p4lm::backend

namespace p4lm {

// What a backend tag must provide: `static constexpr const char* name` and
// `static constexpr bool is_device`. Ops for the backend are overloads on TensorView<B, T>.
template <class B>
concept Backend = requires {
  { B::name } -> std::convertible_to<const char*>;
  { B::is_device } -> std::convertible_to<bool>;
};

static_assert(Backend<backend::cpu> && Backend<backend::cuda>);

// Scalars the ops are instantiated for: float everywhere, double on the CPU (gradient checks).
template <class T>
concept Scalar = std::same_as<T, float> || std::same_as<T, double>;

}  // namespace p4lm
