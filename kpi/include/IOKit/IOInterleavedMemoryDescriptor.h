// IOInterleavedMemoryDescriptor (IOKit/IOInterleavedMemoryDescriptor.h):
// pieces of other descriptors, appended one after another up to a capacity.
#ifndef KMBENCH_KPI_IOKIT_IOINTERLEAVEDMEMORYDESCRIPTOR_H
#define KMBENCH_KPI_IOKIT_IOINTERLEAVEDMEMORYDESCRIPTOR_H

#include <IOKit/IOMemoryDescriptor.h>

class IOInterleavedMemoryDescriptor : public IOMemoryDescriptor {
  OSDeclareDefaultStructors(IOInterleavedMemoryDescriptor);

 public:
  /// capacity: how many pieces it can hold.
  static IOInterleavedMemoryDescriptor* withCapacity(IOByteCount capacity,
                                                     IODirection direction);
  virtual bool initWithCapacity(IOByteCount capacity, IODirection direction);
  virtual void clearMemoryDescriptors(IODirection direction = kIODirectionNone);
  /// Appends [offset, offset + length) of descriptor; false when full or out of range.
  virtual bool setMemoryDescriptor(IOMemoryDescriptor* descriptor, IOByteCount offset,
                                   IOByteCount length);

  addr64_t getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                              IOOptionBits options = 0) override;
  void* kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) override;
  IOReturn prepare(IODirection forDirection = kIODirectionNone) override;
  IOReturn complete(IODirection forDirection = kIODirectionNone) override;

 protected:
  void free() override;

 private:
  struct Piece {
    IOMemoryDescriptor* descriptor;
    IOByteCount offset;
    IOByteCount length;
  };
  Piece* _pieces = nullptr;
  UInt32 _count = 0;
  UInt32 _capacity = 0;
};

#endif
