// The hot calls' mode paths made for each backend type of this build, with the
// backend's own calls inline (core.h, BackendHotEntries). The list is
// InProcessBackends: a worker's KPI library (kmbench::kpi_jemalloc, ...) is
// compiled with its allocator's backends added, so this file is compiled once
// per worker.
#include "allocators/all_backends.h"
#include "core.h"

namespace kmbench::kpi::detail {
namespace {

template <class B>
constexpr BackendHotEntries kEntriesOf{
    &kHeapEntries<Family::io_malloc, nullptr, nullptr, HeapOf<B>>,
    &kTaggedEntries<nullptr, nullptr, HeapOf<B>>,
    &kHeapEntries<Family::os_object, nullptr, nullptr, HeapOf<B>>,
};

/// A backend's type is known by its kMinAlign call, which kOpsFor makes once per type.
template <class... Bs>
const BackendHotEntries* entries_of(const AnyBackend::DirectCalls& calls, BackendList<Bs...>) noexcept {
  const BackendHotEntries* found = nullptr;
  (void)((calls.allocate_heap == kOpsFor<Bs>.allocate_heap && (found = &kEntriesOf<Bs>) != nullptr) || ...);
  return found;
}

}  // namespace

const BackendHotEntries* backend_hot_entries(const AnyBackend::DirectCalls& calls) noexcept {
  return entries_of(calls, InProcessBackends{});
}

}  // namespace kmbench::kpi::detail
