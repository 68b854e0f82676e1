// IOSubMemoryDescriptor, IOMultiMemoryDescriptor, IOInterleavedMemoryDescriptor:
// descriptors made of pieces of other descriptors.
#include <IOKit/IOInterleavedMemoryDescriptor.h>
#include <IOKit/IOMultiMemoryDescriptor.h>
#include <IOKit/IOSubMemoryDescriptor.h>

#include <algorithm>
#include <new>

namespace {

/// The piece holding `offset` of a descriptor made of `count` pieces, where
/// piece i is [start(i), start(i) + length(i)) of descriptor(i). Walks the
/// pieces in order; composite descriptors hold few.
template <class Descriptor, class Start, class Length>
bool find_piece(UInt32 count, IOByteCount offset, Descriptor descriptor, Start start,
                Length length, IOMemoryDescriptor** md, IOByteCount* at, IOByteCount* left) {
  IOByteCount base = 0;
  for (UInt32 i = 0; i < count; ++i) {
    if (offset < base + length(i)) {
      *md = descriptor(i);
      *at = start(i) + (offset - base);
      *left = base + length(i) - offset;
      return true;
    }
    base += length(i);
  }
  return false;
}

addr64_t clip_segment(IOMemoryDescriptor* md, IOByteCount at, IOByteCount left,
                      IOByteCount* length, IOOptionBits options) {
  IOByteCount run = 0;
  const addr64_t pa = md->getPhysicalSegment(at, &run, options);
  if (length != nullptr) {
    *length = pa == 0 ? 0 : std::min(run, left);
  }
  return pa;
}

void* clip_virtual(IOMemoryDescriptor* md, IOByteCount at, IOByteCount left, IOByteCount* length) {
  IOByteCount run = 0;
  void* va = md->kmbenchVirtualSegment(at, &run);
  if (length != nullptr) {
    *length = va == nullptr ? 0 : std::min(run, left);
  }
  return va;
}

/// Prepares every piece's descriptor; on a failure completes those already prepared.
template <class Descriptor>
IOReturn prepare_pieces(UInt32 count, Descriptor descriptor, IODirection direction) {
  for (UInt32 i = 0; i < count; ++i) {
    const IOReturn r = descriptor(i)->prepare(direction);
    if (r != kIOReturnSuccess) {
      while (i-- > 0) {
        descriptor(i)->complete(direction);
      }
      return r;
    }
  }
  return kIOReturnSuccess;
}

template <class Descriptor>
void complete_pieces(UInt32 count, Descriptor descriptor, IODirection direction) {
  for (UInt32 i = 0; i < count; ++i) {
    descriptor(i)->complete(direction);
  }
}

void no_segment(IOByteCount* length) {
  if (length != nullptr) {
    *length = 0;
  }
}

}  // namespace

// ---- IOSubMemoryDescriptor ------------------------------------------------

OSDefineMetaClassAndStructors(IOSubMemoryDescriptor, IOMemoryDescriptor);

IOSubMemoryDescriptor* IOSubMemoryDescriptor::withSubRange(IOMemoryDescriptor* of,
                                                           IOByteCount offset, IOByteCount length,
                                                           IOOptionBits options) {
  auto* me = new IOSubMemoryDescriptor;
  if (me != nullptr && !me->initSubRange(of, offset, length, options & kIOMemoryDirectionMask)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IOSubMemoryDescriptor::initSubRange(IOMemoryDescriptor* parent, IOByteCount offset,
                                         IOByteCount length, IODirection withDirection) {
  if (parent == nullptr || offset > parent->getLength() || length > parent->getLength() - offset ||
      !initDescriptor(length, withDirection)) {
    return false;
  }
  parent->retain();
  _parent = parent;
  _start = offset;
  return true;
}

void IOSubMemoryDescriptor::free() {
  OSSafeReleaseNULL(_parent);
  IOMemoryDescriptor::free();
}

addr64_t IOSubMemoryDescriptor::getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                                   IOOptionBits options) {
  if (offset >= _length) {
    no_segment(length);
    return 0;
  }
  return clip_segment(_parent, _start + offset, _length - offset, length, options);
}

void* IOSubMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  if (offset >= _length) {
    no_segment(length);
    return nullptr;
  }
  return clip_virtual(_parent, _start + offset, _length - offset, length);
}

IOReturn IOSubMemoryDescriptor::prepare(IODirection forDirection) {
  const IOReturn r = _parent->prepare(forDirection);
  return r == kIOReturnSuccess ? IOMemoryDescriptor::prepare(forDirection) : r;
}

IOReturn IOSubMemoryDescriptor::complete(IODirection forDirection) {
  if (_wireCount == 0) {
    return kIOReturnSuccess;
  }
  IOMemoryDescriptor::complete(forDirection);
  return _parent->complete(forDirection);
}

// ---- IOMultiMemoryDescriptor ----------------------------------------------

OSDefineMetaClassAndStructors(IOMultiMemoryDescriptor, IOMemoryDescriptor);

IOMultiMemoryDescriptor* IOMultiMemoryDescriptor::withDescriptors(IOMemoryDescriptor** descriptors,
                                                                  UInt32 withCount,
                                                                  IODirection withDirection,
                                                                  bool asReference) {
  auto* me = new IOMultiMemoryDescriptor;
  if (me != nullptr && !me->initWithDescriptors(descriptors, withCount, withDirection, asReference)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IOMultiMemoryDescriptor::initWithDescriptors(IOMemoryDescriptor** descriptors,
                                                  UInt32 withCount, IODirection withDirection,
                                                  bool) {
  if (descriptors == nullptr || withCount == 0) {
    return false;
  }
  IOByteCount total = 0;
  for (UInt32 i = 0; i < withCount; ++i) {
    if (descriptors[i] == nullptr) {
      return false;
    }
    total += descriptors[i]->getLength();
  }
  if (!initDescriptor(total, withDirection)) {
    return false;
  }
  _descriptors = new (std::nothrow) IOMemoryDescriptor*[withCount];
  if (_descriptors == nullptr) {
    return false;
  }
  for (UInt32 i = 0; i < withCount; ++i) {
    descriptors[i]->retain();
    _descriptors[i] = descriptors[i];
  }
  _count = withCount;
  return true;
}

void IOMultiMemoryDescriptor::free() {
  for (UInt32 i = 0; i < _count; ++i) {
    _descriptors[i]->release();
  }
  delete[] _descriptors;
  _descriptors = nullptr;
  _count = 0;
  IOMemoryDescriptor::free();
}

addr64_t IOMultiMemoryDescriptor::getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                                     IOOptionBits options) {
  IOMemoryDescriptor* md;
  IOByteCount at, left;
  if (!find_piece(
          _count, offset, [&](UInt32 i) { return _descriptors[i]; }, [](UInt32) { return 0; },
          [&](UInt32 i) { return _descriptors[i]->getLength(); }, &md, &at, &left)) {
    no_segment(length);
    return 0;
  }
  return clip_segment(md, at, left, length, options);
}

void* IOMultiMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  IOMemoryDescriptor* md;
  IOByteCount at, left;
  if (!find_piece(
          _count, offset, [&](UInt32 i) { return _descriptors[i]; }, [](UInt32) { return 0; },
          [&](UInt32 i) { return _descriptors[i]->getLength(); }, &md, &at, &left)) {
    no_segment(length);
    return nullptr;
  }
  return clip_virtual(md, at, left, length);
}

IOReturn IOMultiMemoryDescriptor::prepare(IODirection forDirection) {
  const IOReturn r = prepare_pieces(_count, [&](UInt32 i) { return _descriptors[i]; }, forDirection);
  return r == kIOReturnSuccess ? IOMemoryDescriptor::prepare(forDirection) : r;
}

IOReturn IOMultiMemoryDescriptor::complete(IODirection forDirection) {
  if (_wireCount == 0) {
    return kIOReturnSuccess;
  }
  IOMemoryDescriptor::complete(forDirection);
  complete_pieces(_count, [&](UInt32 i) { return _descriptors[i]; }, forDirection);
  return kIOReturnSuccess;
}

// ---- IOInterleavedMemoryDescriptor ----------------------------------------

OSDefineMetaClassAndStructors(IOInterleavedMemoryDescriptor, IOMemoryDescriptor);

IOInterleavedMemoryDescriptor* IOInterleavedMemoryDescriptor::withCapacity(IOByteCount capacity,
                                                                           IODirection direction) {
  auto* me = new IOInterleavedMemoryDescriptor;
  if (me != nullptr && !me->initWithCapacity(capacity, direction)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool IOInterleavedMemoryDescriptor::initWithCapacity(IOByteCount capacity, IODirection direction) {
  if (capacity == 0 || capacity > 0xFFFFFFFFu || !initDescriptor(0, direction)) {
    return false;
  }
  _pieces = new (std::nothrow) Piece[capacity];
  _capacity = _pieces == nullptr ? 0 : static_cast<UInt32>(capacity);
  return _pieces != nullptr;
}

void IOInterleavedMemoryDescriptor::clearMemoryDescriptors(IODirection direction) {
  while (_wireCount > 0) {
    complete();
  }
  for (UInt32 i = 0; i < _count; ++i) {
    _pieces[i].descriptor->release();
  }
  _count = 0;
  _length = 0;
  if (direction != kIODirectionNone) {
    _flags = (_flags & ~IOOptionBits{kIOMemoryDirectionMask}) | direction;
  }
}

bool IOInterleavedMemoryDescriptor::setMemoryDescriptor(IOMemoryDescriptor* descriptor,
                                                        IOByteCount offset, IOByteCount length) {
  if (descriptor == nullptr || _count == _capacity || offset > descriptor->getLength() ||
      length > descriptor->getLength() - offset || _wireCount > 0) {
    return false;
  }
  descriptor->retain();
  _pieces[_count++] = {descriptor, offset, length};
  _length += length;
  return true;
}

void IOInterleavedMemoryDescriptor::free() {
  clearMemoryDescriptors();
  delete[] _pieces;
  _pieces = nullptr;
  IOMemoryDescriptor::free();
}

addr64_t IOInterleavedMemoryDescriptor::getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                                           IOOptionBits options) {
  IOMemoryDescriptor* md;
  IOByteCount at, left;
  if (!find_piece(
          _count, offset, [&](UInt32 i) { return _pieces[i].descriptor; },
          [&](UInt32 i) { return _pieces[i].offset; }, [&](UInt32 i) { return _pieces[i].length; },
          &md, &at, &left)) {
    no_segment(length);
    return 0;
  }
  return clip_segment(md, at, left, length, options);
}

void* IOInterleavedMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  IOMemoryDescriptor* md;
  IOByteCount at, left;
  if (!find_piece(
          _count, offset, [&](UInt32 i) { return _pieces[i].descriptor; },
          [&](UInt32 i) { return _pieces[i].offset; }, [&](UInt32 i) { return _pieces[i].length; },
          &md, &at, &left)) {
    no_segment(length);
    return nullptr;
  }
  return clip_virtual(md, at, left, length);
}

IOReturn IOInterleavedMemoryDescriptor::prepare(IODirection forDirection) {
  const IOReturn r =
      prepare_pieces(_count, [&](UInt32 i) { return _pieces[i].descriptor; }, forDirection);
  return r == kIOReturnSuccess ? IOMemoryDescriptor::prepare(forDirection) : r;
}

IOReturn IOInterleavedMemoryDescriptor::complete(IODirection forDirection) {
  if (_wireCount == 0) {
    return kIOReturnSuccess;
  }
  IOMemoryDescriptor::complete(forDirection);
  complete_pieces(_count, [&](UInt32 i) { return _pieces[i].descriptor; }, forDirection);
  return kIOReturnSuccess;
}
