// IOService (IOKit/IOService.h), as much of it as a driver's memory life needs:
// init with a property table (an OSDictionary, retained as XNU's registry
// entry does), a provider to attach to, start and stop, properties, and the
// work loop found through the provider chain. There is no registry plane,
// matching or power management: a test or harness plays the kernel and calls
// attach and start itself.
#ifndef KMBENCH_KPI_IOKIT_IOSERVICE_H
#define KMBENCH_KPI_IOKIT_IOSERVICE_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSDictionary.h>

class IOWorkLoop;

class IOService : public OSObject {
  OSDeclareDefaultStructors(IOService);

 public:
  /// dictionary: the service's property table (retained), or NULL for an empty one.
  virtual bool init(OSDictionary* dictionary = NULL);

  /// Attaches to provider (retained until detach). post: false when already attached.
  virtual bool attach(IOService* provider);
  virtual void detach(IOService* provider);
  /// The default start and stop do nothing but succeed; drivers override them.
  virtual bool start(IOService* provider);
  virtual void stop(IOService* provider);
  virtual IOService* getProvider() const;
  /// The provider's work loop, up the chain; NULL at the top. Drivers that make their own override this.
  virtual IOWorkLoop* getWorkLoop() const;
  /// Marks the service registered (the matching that would follow is not emulated).
  virtual void registerService(IOOptionBits options = 0);
  bool isRegistered() const { return fRegistered; }

  virtual bool setProperty(const OSSymbol* aKey, OSObject* anObject);
  virtual bool setProperty(const char* aKey, OSObject* anObject);
  virtual OSObject* getProperty(const OSSymbol* aKey) const;
  virtual OSObject* getProperty(const char* aKey) const;
  virtual void removeProperty(const char* aKey);
  /// The property table itself (not retained).
  OSDictionary* getPropertyTable() const { return fPropertyTable; }

 protected:
  void free() override;

 private:
  OSDictionary* fPropertyTable = NULL;
  IOService* fProvider = NULL;
  bool fRegistered = false;
};

#endif
