// Plays the kernel around KmDmaRx: a platform nub with a simulated DMA
// controller, the driver started on it with its parameters in an
// OSDictionary, packets until the limit, then stop and unload; checks that
// every completion ran on the driver's work loop and that everything the
// driver allocated was given back. Runs on the backend KMBENCH_BACKEND names.
// Exit status: 0 ok, 1 a check failed.
#include <cstdio>

#include <kmbench/dma_controller.h>
#include <libkern/c++/OSNumber.h>

#include "KmDmaRx.h"
#include "kmbench/kpi.h"

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "dma_driver: FAILED: %s\n", what);
  return 1;
}

bool set_number(OSDictionary* d, const char* key, UInt32 value) {
  OSNumber* n = OSNumber::withNumber(value, 32);
  const bool ok = n != NULL && d->setObject(key, n);
  OSSafeReleaseNULL(n);
  return ok;
}

}  // namespace

int main() {
  constexpr UInt32 kPackets = 3000;
  constexpr UInt32 kBufferSize = 2048;

  // The platform: a nub and the DMA controller it names as its dma-parent.
  IOService* nub = new IOService;
  KmbenchDMAController* controller = KmbenchDMAController::withChannels(1, 0x10);
  const OSSymbol* parent = IODMAController::createControllerName(0x10);
  if (!nub || !nub->init() || !controller || !controller->start(nub) || !parent ||
      !nub->setProperty("dma-parent", (OSObject*)parent)) {
    return fail("platform");
  }
  OSSafeReleaseNULL(parent);

  // Load: new + init(params) + attach + start, as IOKit's matching would.
  OSDictionary* params = OSDictionary::withCapacity(2);
  if (!params || !set_number(params, "BufferSize", kBufferSize) || !set_number(params, "Buffers", 16)) {
    return fail("parameters");
  }
  KmDmaRx* driver = new KmDmaRx;
  if (!driver || !driver->init(params) || !driver->attach(nub)) {
    return fail("init");
  }
  params->release();
  driver->setPacketLimit(kPackets);
  if (!driver->start(nub)) {
    return fail("start");
  }

  UInt32 outstanding = 0;
  KmDmaRxStats s = driver->stats(&outstanding);
  for (int waited = 0; s.packets < kPackets && waited < 30000; waited++) {
    IOSleep(1);
    s = driver->stats(&outstanding);
  }
  const kmbench::kpi::ClassUsage buffers = kmbench::kpi::class_usage("IOBufferMemoryDescriptor");

  // Unload.
  driver->stop(nub);
  driver->detach(nub);
  driver->release();
  controller->stop(nub);
  const UInt64 transfers = controller->getCompletedTransfers();
  controller->release();
  nub->release();

  std::printf("dma_driver: backend %s: %u packets, %llu bytes, %u bad, %u completions off the work loop, "
              "%llu transfers\n",
              kmbench::kpi::backend().name().c_str(), s.packets, (unsigned long long)s.bytes, s.badPackets,
              s.offLoop, (unsigned long long)transfers);
  if (s.packets != kPackets || s.bytes != (UInt64)kPackets * kBufferSize || s.badPackets != 0) {
    return fail("the driver did not receive what the engine moved");
  }
  if (s.offLoop != 0) {
    return fail("a completion ran off the work loop");
  }
  if (transfers != kPackets) {
    return fail("the engine's count disagrees with the driver's");
  }
  if (buffers.live_instances > 16) {
    return fail("more receive buffers live than posted");
  }
  for (const kmbench::kpi::TagUsage& t : kmbench::kpi::tag_usage()) {
    if (t.live_blocks != 0 || t.state != kmbench::kpi::TagUsage::State::released) {
      return fail("a tag still holds memory after unload");
    }
  }
  for (const char* cls : {"KmDmaRx", "IODMAEventSource", "IOWorkLoop", "IODMACommand", "IOBufferMemoryDescriptor",
                          "KmbenchDMAController", "OSDictionary", "OSNumber", "OSSymbol"}) {
    if (kmbench::kpi::class_usage(cls).live_instances != 0) {
      std::fprintf(stderr, "dma_driver: %s instances live\n", cls);
      return fail("objects still live after unload");
    }
  }
  if (kmbench::kpi::live_blocks() != 0) {
    return fail("blocks still live after unload");
  }
  std::printf("dma_driver: unloaded cleanly\n");
  return 0;
}
