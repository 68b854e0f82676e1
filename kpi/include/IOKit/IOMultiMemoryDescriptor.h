// IOMultiMemoryDescriptor (IOKit/IOMultiMemoryDescriptor.h): descriptors end to end.
#ifndef KMBENCH_KPI_IOKIT_IOMULTIMEMORYDESCRIPTOR_H
#define KMBENCH_KPI_IOKIT_IOMULTIMEMORYDESCRIPTOR_H

#include <IOKit/IOMemoryDescriptor.h>

class IOMultiMemoryDescriptor : public IOMemoryDescriptor {
  OSDeclareDefaultStructors(IOMultiMemoryDescriptor);

 public:
  /// Retains each descriptor; the array itself is copied.
  static IOMultiMemoryDescriptor* withDescriptors(IOMemoryDescriptor** descriptors,
                                                  UInt32 withCount, IODirection withDirection,
                                                  bool asReference = false);
  virtual bool initWithDescriptors(IOMemoryDescriptor** descriptors, UInt32 withCount,
                                   IODirection withDirection, bool asReference = false);

  addr64_t getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                              IOOptionBits options = 0) override;
  void* kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) override;
  IOReturn prepare(IODirection forDirection = kIODirectionNone) override;
  IOReturn complete(IODirection forDirection = kIODirectionNone) override;

 protected:
  void free() override;

 private:
  IOMemoryDescriptor** _descriptors = nullptr;
  UInt32 _count = 0;
};

#endif
