// IODMACommand (IOKit/IODMACommand.h): turns a memory descriptor into the
// address/length segments a device can use, within its limits — address
// bits, segment size, transfer size, alignment — bouncing through low memory
// what the device cannot reach, or mapping through an IOMapper (IOMMU).
#ifndef KMBENCH_KPI_IOKIT_IODMACOMMAND_H
#define KMBENCH_KPI_IOKIT_IODMACOMMAND_H

#include <IOKit/IOMemoryDescriptor.h>

class IOMapper;

class IODMACommand : public OSObject {
  OSDeclareDefaultStructors(IODMACommand);

 public:
  struct Segment32 {
    UInt32 fIOVMAddr, fLength;
  };
  struct Segment64 {
    UInt64 fIOVMAddr, fLength;
  };

  enum MappingOptions {
    kMapped = 0x00000000,
    kBypassed = 0x00000001,
    kNonCoherent = 0x00000002,
    kUnmapped = 0x00000003,
    kTypeMask = 0x0000000f,
    kNoCacheStore = 0x00000010,
    kOnChip = 0x00000020,
    kIterateOnly = 0x00000040,
  };

  enum SynchronizeOptions {
    kForceDoubleBuffer = 0x01000000,
  };

  /// Writes segment number segmentIndex into segments; false when it cannot be represented.
  typedef bool (*SegmentFunction)(IODMACommand* target, Segment64 segment, void* segments,
                                  UInt32 segmentIndex);

  static bool OutputHost32(IODMACommand*, Segment64, void*, UInt32);
  static bool OutputBig32(IODMACommand*, Segment64, void*, UInt32);
  static bool OutputLittle32(IODMACommand*, Segment64, void*, UInt32);
  static bool OutputHost64(IODMACommand*, Segment64, void*, UInt32);
  static bool OutputBig64(IODMACommand*, Segment64, void*, UInt32);
  static bool OutputLittle64(IODMACommand*, Segment64, void*, UInt32);
#define kIODMACommandOutputHost32 (IODMACommand::OutputHost32)
#define kIODMACommandOutputBig32 (IODMACommand::OutputBig32)
#define kIODMACommandOutputLittle32 (IODMACommand::OutputLittle32)
#define kIODMACommandOutputHost64 (IODMACommand::OutputHost64)
#define kIODMACommandOutputBig64 (IODMACommand::OutputBig64)
#define kIODMACommandOutputLittle64 (IODMACommand::OutputLittle64)

  /// 0 for a maximum means unlimited; numAddressBits 0 means 64 (32 for a
  /// 32-bit output function, which cannot take more). NULL on a bad specification.
  static IODMACommand* withSpecification(SegmentFunction outSegFunc, UInt8 numAddressBits,
                                         UInt64 maxSegmentSize,
                                         MappingOptions mappingOptions = kMapped,
                                         UInt64 maxTransferSize = 0, UInt32 alignment = 1,
                                         IOMapper* mapper = NULL, void* refCon = NULL);
  virtual bool initWithSpecification(SegmentFunction outSegFunc, UInt8 numAddressBits,
                                     UInt64 maxSegmentSize,
                                     MappingOptions mappingOptions = kMapped,
                                     UInt64 maxTransferSize = 0, UInt32 alignment = 1,
                                     IOMapper* mapper = NULL, void* refCon = NULL);
  /// A new command with the same specification and no memory descriptor.
  IODMACommand* cloneCommand(void* refCon = NULL);

  virtual IOReturn setMemoryDescriptor(const IOMemoryDescriptor* mem, bool autoPrepare = true);
  virtual IOReturn clearMemoryDescriptor(bool autoComplete = true);
  virtual const IOMemoryDescriptor* getMemoryDescriptor() const;

  /// Readies [offset, offset + length) (length 0: to the end) for DMA: wires the
  /// memory, allocates and fills bounce buffers, maps through the mapper. Nests.
  /// kIOReturnNoSpace when length exceeds maxTransferSize.
  virtual IOReturn prepare(UInt64 offset = 0, UInt64 length = 0, bool flushCache = true,
                           bool synchronize = true);
  /// Ends the transfer: copies bounced data back (direction In) and frees what prepare took.
  virtual IOReturn complete(bool invalidateCache = true, bool synchronize = true);
  /// Copies between memory and bounce buffers: kIODirectionOut to the device side,
  /// kIODirectionIn back; kForceDoubleBuffer re-prepares with every byte bounced.
  virtual IOReturn synchronize(IOOptionBits options);
  virtual IOReturn getPreparedOffsetAndLength(UInt64* offset, UInt64* length);

  /// Segments from *offset on (relative to the prepared offset), each at most
  /// maxSegmentSize, physically adjacent runs merged. post: *offset advanced,
  /// *numSegments = segments written; kIOReturnOverrun when nothing is left.
  virtual IOReturn genIOVMSegments(UInt64* offset, void* segments, UInt32* numSegments);
  virtual IOReturn gen32IOVMSegments(UInt64* offset, Segment32* segments, UInt32* numSegments);
  virtual IOReturn gen64IOVMSegments(UInt64* offset, Segment64* segments, UInt32* numSegments);

  UInt8 getNumAddressBits() const { return fNumAddressBits; }
  UInt32 getAlignment() const { return fAlignMask + 1; }
  void* refCon() const { return fRefCon; }

  /// kmbench: a device reading or writing a generated address (what the
  /// hardware would do), for tests and workloads. post: bytes moved.
  UInt64 kmbenchDeviceRead(UInt64 deviceAddress, void* bytes, UInt64 length);
  /// kmbench: the segments a device walks (gen64IOVMSegments without counting them as generated).
  IOReturn kmbenchDeviceSegments(UInt64* offset, Segment64* segments, UInt32* numSegments);
  UInt64 kmbenchDeviceWrite(UInt64 deviceAddress, const void* bytes, UInt64 length);

  /// kmbench: what a DMA controller reported for the command's last transfer,
  /// and the link of an event source's completed queue (XNU keeps these in
  /// the command's reserved fields).
  struct KmbenchDMAResult {
    IOReturn status = kIOReturnSuccess;
    IOByteCount actualByteCount = 0;
    AbsoluteTime timeStamp = 0;
    IODMACommand* next = nullptr;
  };
  KmbenchDMAResult kmbenchDMAResult;

 protected:
  void free() override;

 private:
  struct Run;
  IOReturn buildRuns(bool synchronize);
  void releaseRuns(bool copyBack);
  IOReturn generate(UInt64* offset, void* segments, UInt32* numSegments, SegmentFunction fn,
                    bool counted = true);
  void copyBounced(bool toDevice);

  SegmentFunction fOutSeg = nullptr;
  UInt8 fNumAddressBits = 64;
  UInt64 fMaxSegmentSize = 0;
  UInt64 fMaxTransferSize = 0;
  UInt64 fAlignMask = 0;
  MappingOptions fMappingOptions = kMapped;
  IOMapper* fMapper = nullptr;
  void* fRefCon = nullptr;

  IOMemoryDescriptor* fMemory = nullptr;
  UInt32 fActive = 0;
  bool fForceDoubleBuffer = false;
  UInt64 fPreparedOffset = 0;
  UInt64 fPreparedLength = 0;
  Run* fRuns = nullptr;
  UInt32 fRunCount = 0;
  UInt64 fMappedBase = 0;  // IOVA of the transfer when mapped, else 0
  UInt64 fMappedPages = 0;
};

#endif
