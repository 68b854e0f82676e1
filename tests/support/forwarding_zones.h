// zones for a test backend that changes one behaviour (a lost free, a refused
// realloc): a class derived from ForwardingZones declares its own kVariants
// and kFeatures and the methods it changes; every other call goes to zones.
#pragma once

#include "allocators/zones/zones.h"

namespace kmbench::test_support {

class ForwardingZones {
 public:
  /// zones' features but for those that need methods it does not forward
  /// (low memory, realloc): a derived class's kFeatures starts from these.
  static constexpr std::uint32_t kForwardedFeatures =
      ZonesBackend::kFeatures & ~std::uint32_t{kFeatureLowMemory | kFeatureRealloc};

  explicit ForwardingZones(const BackendConfig& config) : zones_(config) {}
  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return zones_.allocate(size, align, tag, node);
  }
  void free(void* p, std::size_t size) noexcept { zones_.free(p, size); }
  std::size_t usable_size(void* p, std::size_t size) const noexcept { return zones_.usable_size(p, size); }
  std::size_t reclaim(ReclaimLevel level) { return zones_.reclaim(level); }
  std::uint64_t physical_address(const void* p) const noexcept { return zones_.physical_address(p); }
  BackendStats stats() const { return zones_.stats(); }

 protected:
  ZonesBackend zones_;
};

}  // namespace kmbench::test_support
