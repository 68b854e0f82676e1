// The hot calls' entry points (IOMalloc, IOFree, OSMalloc, OSFree, OSObject's
// new and delete): each jumps through the word the KPI points at the path for
// the mode and the backend (core.h, HotCalls), passing its caller's return
// address for the recording. This file is compiled without a frame pointer
// (kpi/CMakeLists.txt): an entry is then a load, a move and a jump, where a
// frame would only have held the return address it passes on.
#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>
#include <libkern/c++/OSObject.h>

#include <atomic>

#include "core.h"

namespace kd = kmbench::kpi::detail;

extern "C" {

void* IOMalloc(vm_size_t size) {
  return kd::g_io_malloc_calls.allocate.load(std::memory_order_acquire)(size, nullptr, __builtin_return_address(0));
}

void IOFree(void* address, vm_size_t size) {
  kd::g_io_malloc_calls.release.load(std::memory_order_acquire)(address, size, nullptr, __builtin_return_address(0));
}

void* OSMalloc(uint32_t size, OSMallocTag tag) {
  return kd::g_os_malloc_calls.allocate.load(std::memory_order_acquire)(size, tag, __builtin_return_address(0));
}

void OSFree(void* addr, uint32_t size, OSMallocTag tag) {
  kd::g_os_malloc_calls.release.load(std::memory_order_acquire)(addr, size, tag, __builtin_return_address(0));
}

}  // extern "C"

void* OSObject::operator new(size_t size) noexcept {
  return kd::g_os_object_calls.allocate.load(std::memory_order_acquire)(size, nullptr, __builtin_return_address(0));
}

void OSObject::operator delete(void* mem, size_t size) {
  kd::g_os_object_calls.release.load(std::memory_order_acquire)(mem, size, nullptr, __builtin_return_address(0));
}
