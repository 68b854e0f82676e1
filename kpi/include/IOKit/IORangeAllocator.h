// IORangeAllocator (IOKit/IORangeAllocator.h): allocates ranges of a numeric
// space (bus addresses, I/O virtual pages). The free list is a sorted array of
// inclusive ranges; allocation is first fit with alignment; freeing merges
// with neighbours and refuses a range that is (partly) free already.
#ifndef KMBENCH_KPI_IOKIT_IORANGEALLOCATOR_H
#define KMBENCH_KPI_IOKIT_IORANGEALLOCATOR_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSObject.h>

typedef IOByteCount IORangeScalar;

class IORangeAllocator : public OSObject {
  OSDeclareDefaultStructors(IORangeAllocator);

 public:
  enum {
    kLocking = 0x00000001,
  };

  /// The space [0, endOfRange]; capacity: initial room for fragments.
  static IORangeAllocator* withRange(IORangeScalar endOfRange, IORangeScalar defaultAlignment = 0,
                                     UInt32 capacity = 0, IOOptionBits options = 0);
  virtual bool init(IORangeScalar endOfRange, IORangeScalar defaultAlignment, UInt32 capacity,
                    IOOptionBits options);

  /// First fit; alignment 0: the default alignment. false when nothing fits.
  virtual bool allocate(IORangeScalar size, IORangeScalar* result, IORangeScalar alignment = 0);
  /// Exactly [start, start + size); false unless all of it is free.
  virtual bool allocateRange(IORangeScalar start, IORangeScalar size);
  /// Gives [start, start + size) back, merging with free neighbours. A range
  /// overlapping free space is refused (nothing changes; counted).
  virtual void deallocate(IORangeScalar start, IORangeScalar size);

  virtual UInt32 getFragmentCount();
  virtual UInt32 getFragmentCapacity();
  virtual void setFragmentCapacityIncrement(UInt32 count);
  virtual IORangeScalar getFreeCount();
  /// kmbench: deallocations refused because they overlapped free space.
  UInt32 kmbenchRefusedCount() const { return fRefused; }

 protected:
  void free() override;

 private:
  struct Fragment {
    IORangeScalar first, last;  // inclusive
  };
  bool insertFragment(UInt32 at, Fragment f);
  void removeFragment(UInt32 at);
  /// Takes [start, end] out of free fragment i. pre: it lies inside; the lock is held.
  bool carve(UInt32 i, IORangeScalar start, IORangeScalar end);
  void lock();
  void unlock();

  Fragment* fFragments = nullptr;
  UInt32 fCount = 0;
  UInt32 fCapacity = 0;
  UInt32 fIncrement = 16;
  IORangeScalar fDefaultAlignment = 1;
  IOOptionBits fOptions = 0;
  UInt32 fRefused = 0;
  void* fLock = nullptr;
};

#endif
