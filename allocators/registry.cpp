#include "allocators/registry.h"

#include <algorithm>

#include "allocators/jemalloc/jemalloc.h"
#include "allocators/mimalloc/mimalloc.h"

namespace kmbench {
namespace {

/// Backends served by a worker executable of their own, because the allocator
/// they stand for owns the process's malloc (docs/WORKERS.md: one allocator per process).
/// The worker lists them in-process; this executable lists them from here.
/// Names, summaries and features come from the classes themselves (their
/// headers only: nothing of them is linked here).
struct WorkerBackend {
  BackendVariant variant;
  std::uint32_t features;
  std::span<const ParamSpec> params;
  std::string_view executable;
};

/// A backend's parameter table; a backend that takes none declares none.
template <class B>
constexpr std::span<const ParamSpec> params_of() {
  if constexpr (requires { B::kParams; }) {
    return B::kParams;
  } else {
    return {};
  }
}

template <class B>
constexpr WorkerBackend worker(std::size_t variant, std::string_view executable) {
  return {B::kVariants[variant], B::kFeatures, params_of<B>(), executable};
}

BackendInfo info_of(const BackendVariant& v, std::uint32_t features, std::span<const ParamSpec> params,
                    std::string_view executable) {
  return {std::string(v.name), std::string(v.summary), features, std::string(executable), params,
          std::string(v.params)};
}

constexpr WorkerBackend kWorkerBackends[] = {
    worker<JemallocBackend>(0, "kmbench-jemalloc"),
    worker<JemallocBackend>(1, "kmbench-jemalloc"),
    worker<MimallocBackend>(0, "kmbench-mimalloc"),
    worker<MimallocNonumaBackend>(0, "kmbench-mimalloc"),
};

template <class... Bs>
void add_in_process(std::vector<BackendInfo>& out, BackendList<Bs...>) {
  (
      [&] {
        for (const BackendVariant& v : Bs::kVariants) {
          out.push_back(info_of(v, Bs::kFeatures, params_of<Bs>(), {}));
        }
      }(),
      ...);
}

template <class B>
std::unique_ptr<AnyBackend> make_any(const BackendVariant& v, const BackendConfig& config) {
  auto* self = new Counting<B>(with_variant(v, config));
  return std::make_unique<AnyBackend>(std::string(v.name), B::kFeatures, self, &kOpsFor<B>);
}

template <class... Bs>
std::unique_ptr<AnyBackend> open_in_process(std::string_view name, const BackendConfig& config,
                                            BackendList<Bs...>) {
  std::unique_ptr<AnyBackend> out;
  (
      [&] {
        for (const BackendVariant& v : Bs::kVariants) {
          if (!out && v.name == name) {
            out = make_any<Bs>(v, config);
          }
        }
      }(),
      ...);
  return out;
}

}  // namespace

const std::vector<BackendInfo>& all_backends() {
  static const std::vector<BackendInfo> list = [] {
    std::vector<BackendInfo> out;
    add_in_process(out, InProcessBackends{});
    for (const WorkerBackend& w : kWorkerBackends) {
      const bool here = std::any_of(out.begin(), out.end(),
                                    [&](const BackendInfo& b) { return b.name == w.variant.name; });
      if (!w.variant.name.empty() && !here) {
        out.push_back(info_of(w.variant, w.features, w.params, w.executable));
      }
    }
    return out;
  }();
  return list;
}

const BackendInfo* find_backend(std::string_view name) {
  for (const BackendInfo& b : all_backends()) {
    if (b.name == name) {
      return &b;
    }
  }
  return nullptr;
}

BackendConfig with_variant(const BackendVariant& v, const BackendConfig& config) {
  BackendConfig merged = config;
  merged.params.clear();
  apply_params(merged, v.params);
  for (const auto& [key, value] : config.params) {
    merged.params[key] = value;
  }
  return merged;
}

void apply_params(BackendConfig& config, std::string_view params) {
  while (!params.empty()) {
    const std::size_t comma = params.find(',');
    const std::string_view item = params.substr(0, comma);
    params = comma == std::string_view::npos ? std::string_view{} : params.substr(comma + 1);
    if (item.empty()) {
      continue;
    }
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      throw UsageError("backend parameter '" + std::string(item) + "' is not key=value");
    }
    config.params[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
}

std::unique_ptr<AnyBackend> open_backend(std::string_view name, BackendConfig config) {
  if (auto backend = open_in_process(name, config, InProcessBackends{})) {
    return backend;
  }
  const BackendInfo* info = find_backend(name);
  if (info == nullptr) {
    std::string known;
    for (const BackendInfo& b : all_backends()) {
      known += (known.empty() ? "" : ", ") + b.name;
    }
    throw UsageError("unknown backend '" + std::string(name) + "' (known: " + known + ")");
  }
  throw UsageError("backend '" + std::string(name) + "' runs in its own executable, " +
                   info->executable + ", not in this process");
}

std::string feature_names(std::uint32_t features) {
  static constexpr std::pair<Feature, std::string_view> kNames[] = {
      {kFeatureSizedFree, "sized-free"}, {kFeatureNuma, "numa"},
      {kFeatureUsableSize, "usable-size"}, {kFeatureReclaim, "reclaim"},
      {kFeaturePhysical, "physical"},    {kFeatureTags, "tags"},
      {kFeatureLowMemory, "low-memory"}, {kFeatureRealloc, "realloc"},
  };
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if ((features & bit) != 0) {
      if (!out.empty()) out += ',';
      out += name;
    }
  }
  return out;
}

}  // namespace kmbench
