// C++ driver code: an OSObject subclass and IOLib, plus a look at the KPI's accounting.
#include <IOKit/IOLib.h>
#include <libkern/c++/OSObject.h>

#include <cstdio>

#include "kmbench/kpi.h"

extern "C" int c_driver_run(void);

class ConsumerObject : public OSObject {
  OSDeclareDefaultStructors(ConsumerObject);
};
OSDefineMetaClassAndStructors(ConsumerObject, OSObject);

int main() {
  ConsumerObject* o = OSTypeAlloc(ConsumerObject);
  void* aligned = IOMallocAligned(1000, 4096);
  const bool ok = o != nullptr && o->init() && aligned != nullptr &&
                  kmbench::kpi::class_usage("ConsumerObject").live_instances == 1 &&
                  c_driver_run() == 1;
  IOFreeAligned(aligned, 1000);
  OSSafeReleaseNULL(o);
  if (!ok || kmbench::kpi::live_blocks() != 0) {
    std::printf("consumer: FAILED\n");
    return 1;
  }
  std::printf("consumer: ok on %s\n", kmbench::kpi::backend().name().c_str());
  return 0;
}
