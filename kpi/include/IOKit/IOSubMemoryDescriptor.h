// IOSubMemoryDescriptor (IOKit/IOSubMemoryDescriptor.h): a window onto another descriptor.
#ifndef KMBENCH_KPI_IOKIT_IOSUBMEMORYDESCRIPTOR_H
#define KMBENCH_KPI_IOKIT_IOSUBMEMORYDESCRIPTOR_H

#include <IOKit/IOMemoryDescriptor.h>

class IOSubMemoryDescriptor : public IOMemoryDescriptor {
  OSDeclareDefaultStructors(IOSubMemoryDescriptor);

 public:
  /// NULL unless [offset, offset + length) lies inside `of`. options: the direction.
  static IOSubMemoryDescriptor* withSubRange(IOMemoryDescriptor* of, IOByteCount offset,
                                             IOByteCount length, IOOptionBits options);
  virtual bool initSubRange(IOMemoryDescriptor* parent, IOByteCount offset, IOByteCount length,
                            IODirection withDirection);

  addr64_t getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                              IOOptionBits options = 0) override;
  void* kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) override;
  IOReturn prepare(IODirection forDirection = kIODirectionNone) override;
  IOReturn complete(IODirection forDirection = kIODirectionNone) override;

 protected:
  void free() override;

 private:
  IOMemoryDescriptor* _parent = nullptr;
  IOByteCount _start = 0;
};

#endif
