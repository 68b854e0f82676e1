// IODeviceMemory (IOKit/IODeviceMemory.h): a range of physical addresses of a
// device. Here the range must lie in the simulated machine for map() or
// readBytes to reach it.
#ifndef KMBENCH_KPI_IOKIT_IODEVICEMEMORY_H
#define KMBENCH_KPI_IOKIT_IODEVICEMEMORY_H

#include <IOKit/IOMemoryDescriptor.h>

class IODeviceMemory : public IOGeneralMemoryDescriptor {
  OSDeclareDefaultStructors(IODeviceMemory);

 public:
  struct InitElement {
    IOPhysicalAddress start;
    IOPhysicalLength length;
    IOOptionBits options;
  };

  static IODeviceMemory* withRange(IOPhysicalAddress start, IOPhysicalLength length);
  /// NULL unless [offset, offset + length) lies inside `of`.
  static IODeviceMemory* withSubRange(IODeviceMemory* of, IOPhysicalAddress offset,
                                      IOPhysicalLength length);
};

#endif
