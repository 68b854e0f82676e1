// IORangeAllocator: first fit over a sorted array of inclusive free ranges.
#include <IOKit/IORangeAllocator.h>

#include <cstring>
#include <mutex>
#include <new>

OSDefineMetaClassAndStructors(IORangeAllocator, OSObject);

IORangeAllocator* IORangeAllocator::withRange(IORangeScalar endOfRange,
                                              IORangeScalar defaultAlignment, UInt32 capacity,
                                              IOOptionBits options) {
  auto* me = new IORangeAllocator;
  if (me != nullptr && !me->init(endOfRange, defaultAlignment, capacity, options)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IORangeAllocator::init(IORangeScalar endOfRange, IORangeScalar defaultAlignment,
                            UInt32 capacity, IOOptionBits options) {
  if (!OSObject::init()) {
    return false;
  }
  if (defaultAlignment == 0) {
    defaultAlignment = 1;
  }
  if ((defaultAlignment & (defaultAlignment - 1)) != 0) {
    return false;
  }
  fDefaultAlignment = defaultAlignment;
  fOptions = options;
  fCapacity = capacity == 0 ? fIncrement : capacity;
  fFragments = new (std::nothrow) Fragment[fCapacity];
  if (fFragments == nullptr) {
    return false;
  }
  if ((options & kLocking) != 0) {
    fLock = new (std::nothrow) std::mutex;
    if (fLock == nullptr) {
      return false;
    }
  }
  fFragments[0] = {0, endOfRange};
  fCount = 1;
  return true;
}

void IORangeAllocator::free() {
  delete[] fFragments;
  delete static_cast<std::mutex*>(fLock);
  OSObject::free();
}

void IORangeAllocator::lock() {
  if (fLock != nullptr) {
    static_cast<std::mutex*>(fLock)->lock();
  }
}
void IORangeAllocator::unlock() {
  if (fLock != nullptr) {
    static_cast<std::mutex*>(fLock)->unlock();
  }
}

bool IORangeAllocator::insertFragment(UInt32 at, Fragment f) {
  if (fCount == fCapacity) {
    const UInt32 bigger = fCapacity + (fIncrement == 0 ? 16 : fIncrement);
    auto* grown = new (std::nothrow) Fragment[bigger];
    if (grown == nullptr) {
      return false;
    }
    std::memcpy(grown, fFragments, sizeof(Fragment) * fCount);
    delete[] fFragments;
    fFragments = grown;
    fCapacity = bigger;
  }
  std::memmove(fFragments + at + 1, fFragments + at, sizeof(Fragment) * (fCount - at));
  fFragments[at] = f;
  ++fCount;
  return true;
}

void IORangeAllocator::removeFragment(UInt32 at) {
  std::memmove(fFragments + at, fFragments + at + 1, sizeof(Fragment) * (fCount - at - 1));
  --fCount;
}

bool IORangeAllocator::carve(UInt32 i, IORangeScalar start, IORangeScalar end) {
  const Fragment f = fFragments[i];
  if (start == f.first && end == f.last) {
    removeFragment(i);
  } else if (start == f.first) {
    fFragments[i].first = end + 1;
  } else if (end == f.last) {
    fFragments[i].last = start - 1;
  } else {
    fFragments[i].last = start - 1;
    if (!insertFragment(i + 1, {end + 1, f.last})) {
      fFragments[i] = f;
      return false;
    }
  }
  return true;
}

bool IORangeAllocator::allocate(IORangeScalar size, IORangeScalar* result,
                                IORangeScalar alignment) {
  if (size == 0 || result == nullptr) {
    return false;
  }
  if (alignment == 0) {
    alignment = fDefaultAlignment;
  }
  if ((alignment & (alignment - 1)) != 0) {
    return false;
  }
  lock();
  for (UInt32 i = 0; i < fCount; ++i) {
    const Fragment f = fFragments[i];
    const IORangeScalar start = (f.first + alignment - 1) & ~(alignment - 1);
    if (start < f.first || start > f.last || f.last - start < size - 1) {
      continue;
    }
    const bool ok = carve(i, start, start + size - 1);
    unlock();
    if (ok) {
      *result = start;
    }
    return ok;
  }
  unlock();
  return false;
}

bool IORangeAllocator::allocateRange(IORangeScalar start, IORangeScalar size) {
  if (size == 0 || start + size - 1 < start) {
    return false;
  }
  const IORangeScalar end = start + size - 1;
  lock();
  for (UInt32 i = 0; i < fCount; ++i) {
    const Fragment f = fFragments[i];
    if (start < f.first || end > f.last) {
      continue;
    }
    const bool ok = carve(i, start, end);
    unlock();
    return ok;
  }
  unlock();
  return false;
}

void IORangeAllocator::deallocate(IORangeScalar start, IORangeScalar size) {
  if (size == 0 || start + size - 1 < start) {
    return;
  }
  const IORangeScalar end = start + size - 1;
  lock();
  // The first free fragment that ends at or after start.
  UInt32 i = 0;
  while (i < fCount && fFragments[i].last < start) {
    ++i;
  }
  if (i < fCount && fFragments[i].first <= end) {
    ++fRefused;  // overlaps free space: freeing it twice would corrupt the list
    unlock();
    return;
  }
  const bool joins_left = i > 0 && fFragments[i - 1].last + 1 == start;
  const bool joins_right = i < fCount && end + 1 == fFragments[i].first;
  if (joins_left && joins_right) {
    fFragments[i - 1].last = fFragments[i].last;
    removeFragment(i);
  } else if (joins_left) {
    fFragments[i - 1].last = end;
  } else if (joins_right) {
    fFragments[i].first = start;
  } else if (!insertFragment(i, {start, end})) {
    ++fRefused;
  }
  unlock();
}

UInt32 IORangeAllocator::getFragmentCount() { return fCount; }
UInt32 IORangeAllocator::getFragmentCapacity() { return fCapacity; }
void IORangeAllocator::setFragmentCapacityIncrement(UInt32 count) { fIncrement = count; }

IORangeScalar IORangeAllocator::getFreeCount() {
  lock();
  IORangeScalar total = 0;
  for (UInt32 i = 0; i < fCount; ++i) {
    total += fFragments[i].last - fFragments[i].first + 1;
  }
  unlock();
  return total;
}
