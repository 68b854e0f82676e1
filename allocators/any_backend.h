// The run-time face of a backend: AnyBackend, one function table per backend
// type (built from one template over the Backend concept), and the catalogue
// of backend names. This is what the KPI and tools include; it names no
// backend, so a driver build that includes <kmbench/kpi.h> compiles none of
// their headers. Hot loops choose a concrete type instead: registry.h.
//
// Some backends live in other executables (a third-party allocator that owns
// malloc must be alone in its process): BackendInfo::executable names them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "allocators/backend.h"
#include "allocators/counting.h"
#include "allocators/params.h"
#include "base/errors.h"

namespace kmbench {

struct BackendInfo {
  std::string name;
  std::string summary;
  std::uint32_t features = 0;
  std::string executable;  // empty: served by this executable
  std::span<const ParamSpec> params;  // what backend_params / --backend-param may set (params.h)
  std::string preset;                 // the variant's own settings ("classes=kalloc_type")
};

/// Every backend kmbench knows, in this executable and in its worker executables.
const std::vector<BackendInfo>& all_backends();

/// The backend of that name, or nullptr.
const BackendInfo* find_backend(std::string_view name);

/// Parses "key=value,key=value" into config.params (later keys win).
/// Throws UsageError naming the malformed item.
void apply_params(BackendConfig& config, std::string_view params);
/// `config` with the variant's parameters underneath the caller's own.
BackendConfig with_variant(const BackendVariant& v, const BackendConfig& config);

/// One function table per backend type: the run-time face of a backend.
struct BackendOps {
  void* (*allocate)(void* self, std::size_t size, std::size_t align, TagId, NodeId) noexcept;
  void (*free)(void* self, void* p, std::size_t size, TagId) noexcept;
  void* (*allocate_direct)(void* self, std::size_t size, std::size_t align, TagId, NodeId) noexcept;
  void (*free_direct)(void* self, void* p, std::size_t size) noexcept;
  /// allocate_direct at kMinAlign on any node: kalloc's call, with nothing to pass but size and tag.
  void* (*allocate_heap)(void* self, std::size_t size, TagId) noexcept;
  /// allocate_direct for a request that may not wait: the backend's allocate_nowait where it has one.
  void* (*allocate_direct_nowait)(void* self, std::size_t size, std::size_t align, TagId, NodeId) noexcept;
  std::size_t (*usable_size)(const void* self, void* p, std::size_t size) noexcept;  // may be null
  std::uint64_t (*physical_address)(const void* self, const void* p) noexcept;      // may be null
  std::size_t (*reclaim)(void* self, ReclaimLevel);                                  // may be null
  void* (*allocate_low)(void* self, std::size_t size, std::size_t align, TagId, NodeId) noexcept;  // may be null
  void (*free_low)(void* self, void* p, std::size_t size, TagId) noexcept;           // may be null
  void* (*reallocate)(void* self, void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId,
                      NodeId) noexcept;
  CountingStats (*stats)(const void* self);
  CountingFootprint (*footprint)(const void* self);
  void (*destroy)(void* self) noexcept;
};

template <Backend B>
inline constexpr BackendOps kOpsFor = {
    [](void* self, std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
      return static_cast<Counting<B>*>(self)->allocate(size, align, tag, node);
    },
    [](void* self, void* p, std::size_t size, TagId tag) noexcept {
      static_cast<Counting<B>*>(self)->free(p, size, tag);
    },
    [](void* self, std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
      return static_cast<Counting<B>*>(self)->inner().allocate(size, align, tag, node);
    },
    [](void* self, void* p, std::size_t size) noexcept { static_cast<Counting<B>*>(self)->inner().free(p, size); },
    [](void* self, std::size_t size, TagId tag) noexcept {
      return static_cast<Counting<B>*>(self)->inner().allocate(size, kMinAlign, tag, kAnyNode);
    },
    [](void* self, std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
      if constexpr (NowaitBackend<B>) {
        return static_cast<Counting<B>*>(self)->inner().allocate_nowait(size, align, tag, node);
      } else {
        return static_cast<Counting<B>*>(self)->inner().allocate(size, align, tag, node);
      }
    },
    (B::kFeatures & kFeatureUsableSize)
        ? +[](const void* self, void* p, std::size_t size) noexcept -> std::size_t {
            if constexpr ((B::kFeatures & kFeatureUsableSize) != 0) {
              return static_cast<const Counting<B>*>(self)->usable_size(p, size);
            } else {
              return size;
            }
          }
        : nullptr,
    (B::kFeatures & kFeaturePhysical)
        ? +[](const void* self, const void* p) noexcept -> std::uint64_t {
            if constexpr ((B::kFeatures & kFeaturePhysical) != 0) {
              return static_cast<const Counting<B>*>(self)->physical_address(p);
            } else {
              return 0;
            }
          }
        : nullptr,
    (B::kFeatures & kFeatureReclaim)
        ? +[](void* self, ReclaimLevel level) -> std::size_t {
            if constexpr ((B::kFeatures & kFeatureReclaim) != 0) {
              return static_cast<Counting<B>*>(self)->reclaim(level);
            } else {
              return 0;
            }
          }
        : nullptr,
    (B::kFeatures & kFeatureLowMemory)
        ? +[](void* self, std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept -> void* {
            if constexpr ((B::kFeatures & kFeatureLowMemory) != 0) {
              return static_cast<Counting<B>*>(self)->allocate_low(size, align, tag, node);
            } else {
              return nullptr;
            }
          }
        : nullptr,
    (B::kFeatures & kFeatureLowMemory)
        ? +[](void* self, void* p, std::size_t size, TagId tag) noexcept {
            if constexpr ((B::kFeatures & kFeatureLowMemory) != 0) {
              static_cast<Counting<B>*>(self)->free_low(p, size, tag);
            }
          }
        : nullptr,
    [](void* self, void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
       NodeId node) noexcept {
      return static_cast<Counting<B>*>(self)->reallocate(p, old_size, new_size, align, tag, node);
    },
    [](const void* self) { return static_cast<const Counting<B>*>(self)->stats(); },
    [](const void* self) { return static_cast<const Counting<B>*>(self)->footprint(); },
    [](void* self) noexcept { delete static_cast<Counting<B>*>(self); },
};

/// kOpsFor<B> over a Counting<B> its caller owns: destroying the AnyBackend leaves it be.
template <Backend B>
inline constexpr BackendOps kBorrowedOpsFor = [] {
  BackendOps ops = kOpsFor<B>;
  ops.destroy = [](void*) noexcept {};
  return ops;
}();

/// A backend chosen at run time. Owns its Counting<B>.
class AnyBackend {
 public:
  AnyBackend(std::string name, std::uint32_t features, void* self, const BackendOps* ops)
      : name_(std::move(name)), features_(features), self_(self), ops_(ops) {}
  ~AnyBackend() { ops_->destroy(self_); }
  AnyBackend(const AnyBackend&) = delete;
  AnyBackend& operator=(const AnyBackend&) = delete;

  const std::string& name() const noexcept { return name_; }
  std::uint32_t features() const noexcept { return features_; }
  bool has(Feature f) const noexcept { return (features_ & f) != 0; }

  void* allocate(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return ops_->allocate(self_, size, align, tag, node);
  }
  void free(void* p, std::size_t size, TagId tag = kNoTag) noexcept {
    ops_->free(self_, p, size, tag);
  }
  /// The backend itself, past the counting decorator: for a caller that keeps
  /// its own books (the KPI), so that what it times is the backend and its own
  /// checks. stats() then counts none of these blocks; the backend's own
  /// statistics (stats().backend) do.
  void* allocate_direct(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return ops_->allocate_direct(self_, size, align, tag, node);
  }
  /// allocate_direct for a request that may not wait (OSMalloc_noblock): the
  /// backend's no-wait call where it has one (NowaitBackend), else allocate.
  void* allocate_direct_nowait(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return ops_->allocate_direct_nowait(self_, size, align, tag, node);
  }
  /// pre: p came from allocate_direct or allocate_direct_nowait with this size (or is nullptr)
  void free_direct(void* p, std::size_t size) noexcept {
    if (p != nullptr) ops_->free_direct(self_, p, size);
  }
  /// allocate_direct and free_direct as plain function pointers and the
  /// argument they take first, for a caller that keeps them at hand (the KPI's
  /// inline path loads each from its own word instead of through this object).
  struct DirectCalls {
    void* self = nullptr;
    void* (*allocate)(void* self, std::size_t size, std::size_t align, TagId, NodeId) noexcept = nullptr;
    void (*free)(void* self, void* p, std::size_t size) noexcept = nullptr;
    void* (*allocate_heap)(void* self, std::size_t size, TagId) noexcept = nullptr;
  };
  DirectCalls direct_calls() const noexcept {
    return {self_, ops_->allocate_direct, ops_->free_direct, ops_->allocate_heap};
  }
  /// Bytes handed out for a block of that requested size (size when unknown).
  std::size_t usable_size(void* p, std::size_t size) const noexcept {
    return ops_->usable_size ? ops_->usable_size(self_, p, size) : size;
  }
  /// pre: has(kFeatureLowMemory)
  void* allocate_low(std::size_t size, std::size_t align, TagId tag, NodeId node) noexcept {
    return ops_->allocate_low(self_, size, align, tag, node);
  }
  /// pre: p came from allocate_low with this size
  void free_low(void* p, std::size_t size, TagId tag = kNoTag) noexcept {
    ops_->free_low(self_, p, size, tag);
  }
  /// realloc: the backend's own (kFeatureRealloc), else allocate, copy and
  /// free (kmbench::reallocate); counted. p nullptr: allocate.
  /// pre: p came from allocate with old_size and this align
  void* reallocate(void* p, std::size_t old_size, std::size_t new_size, std::size_t align, TagId tag,
                   NodeId node) noexcept {
    return ops_->reallocate(self_, p, old_size, new_size, align, tag, node);
  }
  /// pre: has(kFeaturePhysical)
  std::uint64_t physical_address(const void* p) const noexcept {
    return ops_->physical_address(self_, p);
  }
  /// Bytes given back; 0 when the backend cannot reclaim.
  std::size_t reclaim(ReclaimLevel level) {
    return ops_->reclaim ? ops_->reclaim(self_, level) : 0;
  }
  CountingStats stats() const { return ops_->stats(self_); }
  CountingFootprint footprint() const { return ops_->footprint(self_); }

 private:
  std::string name_;
  std::uint32_t features_;
  void* self_;
  const BackendOps* ops_;
};

/// Opens the named backend in this process.
/// Throws UsageError if the name is unknown or the backend lives in another executable.
std::unique_ptr<AnyBackend> open_backend(std::string_view name, BackendConfig config = {});

}  // namespace kmbench
