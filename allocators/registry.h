// The registry: backends by short name, chosen at run time, once per run.
//
// Two ways in:
//  - with_backend(name, config, f) calls f(Counting<B>&) with the concrete
//    type, so whatever f runs (the replay loop, a benchmark) is instantiated
//    per backend and allocate/free inline. Use it for hot loops; it compiles
//    every backend's header.
//  - open_backend(name, config) gives an AnyBackend (any_backend.h): one
//    function table per run, one indirect call per operation. Use it where a
//    call is not the cost being measured (the KPI, tools, tests).
#pragma once

#include <string_view>
#include <type_traits>

#include "allocators/all_backends.h"
#include "allocators/any_backend.h"

namespace kmbench {

namespace detail {
template <class F, class B, class... Rest>
bool dispatch(std::string_view name, BackendConfig& config, F& f) {
  for (const BackendVariant& v : B::kVariants) {
    if (v.name == name) {
      Counting<B> backend(with_variant(v, config));
      f(backend);
      return true;
    }
  }
  if constexpr (sizeof...(Rest) > 0) {
    return dispatch<F, Rest...>(name, config, f);
  } else {
    return false;
  }
}
template <class F, class... Bs>
bool dispatch_list(std::string_view name, BackendConfig& config, F& f, BackendList<Bs...>) {
  return dispatch<F, Bs...>(name, config, f);
}
}  // namespace detail

/// Constructs the named backend in this process and calls f(Counting<B>&).
/// Returns false if no backend of that name is compiled into this executable.
template <class F>
bool with_backend(std::string_view name, BackendConfig config, F&& f) {
  return detail::dispatch_list(name, config, f, InProcessBackends{});
}

}  // namespace kmbench
