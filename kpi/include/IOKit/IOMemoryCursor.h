// IOMemoryCursor (IOKit/IOMemoryCursor.h): the older way to cut a descriptor
// into physical segments, with a segment size, transfer size and alignment;
// the Natural/Big/Little cursors write host-, big- or little-endian segments.
#ifndef KMBENCH_KPI_IOKIT_IOMEMORYCURSOR_H
#define KMBENCH_KPI_IOKIT_IOMEMORYCURSOR_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSObject.h>

class IOMemoryDescriptor;

class IOMemoryCursor : public OSObject {
  OSDeclareDefaultStructors(IOMemoryCursor);

 public:
  struct PhysicalSegment {
    IOPhysicalAddress location;
    IOPhysicalLength length;
  };
  typedef void (*SegmentFunction)(PhysicalSegment segment, void* segments, UInt32 segmentIndex);

  /// maxSegmentSize / maxTransferSize 0: unlimited.
  static IOMemoryCursor* withSpecification(SegmentFunction outSegFunc,
                                           IOPhysicalLength maxSegmentSize = 0,
                                           IOPhysicalLength maxTransferSize = 0,
                                           IOPhysicalLength alignment = 1);
  virtual bool initWithSpecification(SegmentFunction outSegFunc,
                                     IOPhysicalLength maxSegmentSize = 0,
                                     IOPhysicalLength maxTransferSize = 0,
                                     IOPhysicalLength alignment = 1);
  /// Segments of descriptor from fromPosition on. post: segments written;
  /// *transferSize (if given) = bytes they cover.
  virtual UInt32 genPhysicalSegments(IOMemoryDescriptor* descriptor, IOByteCount fromPosition,
                                     void* segments, UInt32 maxSegments,
                                     UInt32 maxTransferSize = 0, IOByteCount* transferSize = 0);

 protected:
  SegmentFunction outSeg = nullptr;
  IOPhysicalLength maxSegmentSize = 0;
  IOPhysicalLength maxTransferSize = 0;
  IOPhysicalLength alignMask = 0;
};

class IONaturalMemoryCursor : public IOMemoryCursor {
  OSDeclareDefaultStructors(IONaturalMemoryCursor);

 public:
  static void outputSegment(PhysicalSegment segment, void* segments, UInt32 segmentIndex);
  static IONaturalMemoryCursor* withSpecification(IOPhysicalLength maxSegmentSize,
                                                  IOPhysicalLength maxTransferSize,
                                                  IOPhysicalLength alignment = 1);
  virtual bool initWithSpecification(IOPhysicalLength maxSegmentSize,
                                     IOPhysicalLength maxTransferSize,
                                     IOPhysicalLength alignment = 1);
  UInt32 getPhysicalSegments(IOMemoryDescriptor* descriptor, IOByteCount fromPosition,
                             PhysicalSegment* segments, UInt32 maxSegments,
                             UInt32 inMaxTransferSize = 0, IOByteCount* transferSize = 0) {
    return genPhysicalSegments(descriptor, fromPosition, segments, maxSegments,
                               inMaxTransferSize, transferSize);
  }
};

class IOBigMemoryCursor : public IOMemoryCursor {
  OSDeclareDefaultStructors(IOBigMemoryCursor);

 public:
  static void outputSegment(PhysicalSegment segment, void* segments, UInt32 segmentIndex);
  static IOBigMemoryCursor* withSpecification(IOPhysicalLength maxSegmentSize,
                                              IOPhysicalLength maxTransferSize,
                                              IOPhysicalLength alignment = 1);
  virtual bool initWithSpecification(IOPhysicalLength maxSegmentSize,
                                     IOPhysicalLength maxTransferSize,
                                     IOPhysicalLength alignment = 1);
  UInt32 getPhysicalSegments(IOMemoryDescriptor* descriptor, IOByteCount fromPosition,
                             PhysicalSegment* segments, UInt32 maxSegments,
                             UInt32 inMaxTransferSize = 0, IOByteCount* transferSize = 0) {
    return genPhysicalSegments(descriptor, fromPosition, segments, maxSegments,
                               inMaxTransferSize, transferSize);
  }
};

class IOLittleMemoryCursor : public IOMemoryCursor {
  OSDeclareDefaultStructors(IOLittleMemoryCursor);

 public:
  static void outputSegment(PhysicalSegment segment, void* segments, UInt32 segmentIndex);
  static IOLittleMemoryCursor* withSpecification(IOPhysicalLength maxSegmentSize,
                                                 IOPhysicalLength maxTransferSize,
                                                 IOPhysicalLength alignment = 1);
  virtual bool initWithSpecification(IOPhysicalLength maxSegmentSize,
                                     IOPhysicalLength maxTransferSize,
                                     IOPhysicalLength alignment = 1);
  UInt32 getPhysicalSegments(IOMemoryDescriptor* descriptor, IOByteCount fromPosition,
                             PhysicalSegment* segments, UInt32 maxSegments,
                             UInt32 inMaxTransferSize = 0, IOByteCount* transferSize = 0) {
    return genPhysicalSegments(descriptor, fromPosition, segments, maxSegments,
                               inMaxTransferSize, transferSize);
  }
};

#endif
