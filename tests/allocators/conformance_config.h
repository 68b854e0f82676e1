// The configuration every backend is opened with in the conformance suite.
#pragma once

#include "allocators/backend.h"

namespace kmbench::testing {

/// A config fit for any in-process backend (a simulated machine, where one is needed).
inline BackendConfig conformance_config() { return BackendConfig{}; }

}  // namespace kmbench::testing
