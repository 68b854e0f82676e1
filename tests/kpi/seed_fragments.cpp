// The seed documents' driver fragments, as written there (comments restored
// to the lines they belong to), inside a driver class of the seed's kind.
// The test that runs them (test_seed_fragments.cpp) also proves they compile.
#include <IOKit/IOLib.h>
#include <IOKit/IOMemoryDescriptor.h>
#include <IOKit/IOService.h>
#include <libkern/c++/OSDictionary.h>

#include <IOKit/IODMAController.h>
#include <IOKit/IODMAEventSource.h>

#include "tests/kpi/seed_fragments.h"

// "IOClassType": an IOKit class as the seed's driver declares one.
class IOClassType : public IOService {
  OSDeclareDefaultStructors(IOClassType);

 public:
  bool init(OSDictionary* dictionary = NULL) override {
    if (!IOService::init(dictionary)) {
      return false;
    }
    initialised = true;
    return true;
  }
  bool initialised = false;
};
OSDefineMetaClassAndStructors(IOClassType, IOService);

namespace kmbench::testing {

// Seed 000: allocate an OSObject subclass with new, then init it with NULL params.
bool seed000_init_without_params() {
  IOClassType * aClassInstance = new IOClassType; // increments reference counter
  if (!aClassInstance) {
    // Code handling error
    return false;
  }

  if (!aClassInstance->init(/* params */)) {
    // Code handling error
    aClassInstance->release();
    return false;
  }
  const bool ok = aClassInstance->initialised && aClassInstance->getRetainCount() == 1;
  aClassInstance->release();
  return ok;
}

// Seed 000: "Replace params with either NULL or a valid OSDictionary instance
// (which is a lookup table) containing the arguments for the init method."
bool seed000_init_with_dictionary() {
  OSDictionary* params = OSDictionary::withCapacity(1);
  OSString* value = OSString::withCString("rx");
  if (!params || !value || !params->setObject("Queue", value)) {
    OSSafeReleaseNULL(value);
    OSSafeReleaseNULL(params);
    return false;
  }
  IOClassType * aClassInstance = new IOClassType; // increments reference counter
  if (!aClassInstance) {
    // Code handling error
    params->release();
    value->release();
    return false;
  }

  bool ok = aClassInstance->init(params) && aClassInstance->getProperty("Queue") == value;
  aClassInstance->release();
  params->release();
  value->release();
  return ok;
}

// Seed 000: the withParams kind of factory it points to.
bool seed000_with_physical_address() {
  IOMemoryDescriptor* md = IOMemoryDescriptor::withPhysicalAddress(0x1000, 4096, kIODirectionIn);
  const bool ok = md != NULL && md->getLength() == 4096;
  OSSafeReleaseNULL(md);
  return ok;
}

// Seed 002 lists IODMAController and IODMAEventSource: their types as a driver names them.
bool seed002_dma_types_named() {
  IODMAEventSource::Action completion = NULL;
  IODMAEventAction notification = NULL;
  IODMAController* controller = IODMAController::getController(NULL, 0);
  return completion == NULL && notification == NULL && controller == NULL;
}

}  // namespace kmbench::testing
