// IOService: a property table, a provider, start and stop. Every service's
// properties share one lock, as XNU's registry entries do.
#include <IOKit/IOService.h>

#include <mutex>

OSDefineMetaClassAndStructors(IOService, OSObject);

namespace {
std::mutex& property_lock() {
  static std::mutex* m = new std::mutex;  // never destroyed: services may be freed at exit
  return *m;
}
}  // namespace

bool IOService::init(OSDictionary* dictionary) {
  if (!OSObject::init()) {
    return false;
  }
  if (dictionary != NULL) {
    dictionary->retain();
    OSSafeReleaseNULL(fPropertyTable);
    fPropertyTable = dictionary;
  } else if (fPropertyTable == NULL) {
    fPropertyTable = OSDictionary::withCapacity(4);
  }
  return fPropertyTable != NULL;
}

void IOService::free() {
  OSSafeReleaseNULL(fPropertyTable);
  OSSafeReleaseNULL(fProvider);
  OSObject::free();
}

bool IOService::attach(IOService* provider) {
  if (provider == NULL || fProvider != NULL || provider == this) {
    return false;
  }
  provider->retain();
  fProvider = provider;
  return true;
}

void IOService::detach(IOService* provider) {
  if (provider != NULL && provider == fProvider) {
    OSSafeReleaseNULL(fProvider);
  }
}

bool IOService::start(IOService*) { return true; }
void IOService::stop(IOService*) {}
IOService* IOService::getProvider() const { return fProvider; }
IOWorkLoop* IOService::getWorkLoop() const { return fProvider != NULL ? fProvider->getWorkLoop() : NULL; }
void IOService::registerService(IOOptionBits) { fRegistered = true; }

bool IOService::setProperty(const OSSymbol* aKey, OSObject* anObject) {
  std::lock_guard guard(property_lock());
  return fPropertyTable != NULL && fPropertyTable->setObject(aKey, anObject);
}

bool IOService::setProperty(const char* aKey, OSObject* anObject) {
  std::lock_guard guard(property_lock());
  return fPropertyTable != NULL && fPropertyTable->setObject(aKey, anObject);
}

OSObject* IOService::getProperty(const OSSymbol* aKey) const {
  std::lock_guard guard(property_lock());
  return fPropertyTable != NULL ? fPropertyTable->getObject(aKey) : NULL;
}

OSObject* IOService::getProperty(const char* aKey) const {
  std::lock_guard guard(property_lock());
  return fPropertyTable != NULL ? fPropertyTable->getObject(aKey) : NULL;
}

void IOService::removeProperty(const char* aKey) {
  std::lock_guard guard(property_lock());
  if (fPropertyTable != NULL) {
    fPropertyTable->removeObject(aKey);
  }
}
