// IOBufferMemoryDescriptor (IOKit/IOBufferMemoryDescriptor.h): a descriptor
// that owns its buffer. Small unrestricted buffers come from the kalloc path
// (IOMallocAligned, i.e. the active backend), as in XNU; contiguous,
// address-limited, page-aligned or page-sized ones from the page layer of
// the simulated machine, on the node set with kmbench::kpi::set_dma_node.
#ifndef KMBENCH_KPI_IOKIT_IOBUFFERMEMORYDESCRIPTOR_H
#define KMBENCH_KPI_IOKIT_IOBUFFERMEMORYDESCRIPTOR_H

#include <IOKit/IOMemoryDescriptor.h>

class IOBufferMemoryDescriptor : public IOGeneralMemoryDescriptor {
  OSDeclareDefaultStructors(IOBufferMemoryDescriptor);

 public:
  static IOBufferMemoryDescriptor* withOptions(IOOptionBits options, vm_size_t capacity,
                                               vm_offset_t alignment = 1);
  static IOBufferMemoryDescriptor* inTaskWithOptions(task_t inTask, IOOptionBits options,
                                                     vm_size_t capacity,
                                                     vm_offset_t alignment = 1);
  /// Alignment = lowest set bit of the mask (at least a page); the buffer lies
  /// at or below mask | (alignment - 1).
  static IOBufferMemoryDescriptor* inTaskWithPhysicalMask(task_t inTask, IOOptionBits options,
                                                          mach_vm_size_t capacity,
                                                          mach_vm_address_t physicalMask);
  /// = withOptions(direction | (contiguous ? kIOMemoryPhysicallyContiguous : 0),
  ///               capacity, contiguous ? capacity : 1)
  static IOBufferMemoryDescriptor* withCapacity(vm_size_t capacity, IODirection withDirection,
                                                bool withContiguousMemory = false);
  static IOBufferMemoryDescriptor* withBytes(const void* bytes, vm_size_t withLength,
                                             IODirection withDirection,
                                             bool withContiguousMemory = false);

  virtual bool initWithPhysicalMask(task_t inTask, IOOptionBits options,
                                    mach_vm_size_t capacity, mach_vm_address_t alignment,
                                    mach_vm_address_t physicalMask);

  /// Lengths above the capacity are ignored.
  virtual void setLength(vm_size_t length);
  virtual void setDirection(IODirection direction);
  virtual vm_size_t getCapacity() const;
  virtual void* getBytesNoCopy();
  /// NULL when [start, start + withLength) is not inside the length.
  virtual void* getBytesNoCopy(vm_size_t start, vm_size_t withLength);
  /// Appends up to the capacity.
  virtual bool appendBytes(const void* bytes, vm_size_t withLength);

 protected:
  void free() override;

 private:
  void* _buffer = nullptr;
  vm_size_t _capacity = 0;
  vm_size_t _allocated = 0;  // bytes taken from where the buffer came from
  vm_offset_t _alignment = 0;
  bool _fromPages = false;   // page layer (else IOMallocAligned)
};

#endif
