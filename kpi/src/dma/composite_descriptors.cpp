// IOSubMemoryDescriptor, IOMultiMemoryDescriptor, IOInterleavedMemoryDescriptor:
// descriptors made of pieces of other descriptors.
#include <IOKit/IOInterleavedMemoryDescriptor.h>
#include <IOKit/IOMultiMemoryDescriptor.h>
#include <IOKit/IOSubMemoryDescriptor.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <new>
#include <span>

#include "dma_internal.h"

namespace dma = kmbench::kpi::dma;

namespace {

/// One piece of a composite descriptor: bytes [offset, offset + length) of descriptor.
/// A sub-range is one such piece; IOInterleavedMemoryDescriptor keeps its pieces in this shape.
struct PieceRange {
  IOMemoryDescriptor* descriptor;
  IOByteCount offset;
  IOByteCount length;
};

/// IOMultiMemoryDescriptor's pieces are whole descriptors.
PieceRange as_piece(IOMemoryDescriptor* whole) { return {whole, 0, whole->getLength()}; }
template <class Piece>
PieceRange as_piece(const Piece& p) {
  return {p.descriptor, p.offset, p.length};
}

std::array<PieceRange, 1> one_piece(IOMemoryDescriptor* descriptor, IOByteCount offset,
                                    IOByteCount length) {
  return {{{descriptor, offset, length}}};
}

/// The segment holding byte `offset` of a descriptor made of `pieces`, its length clipped to
/// the piece: `segment(descriptor, at, &run)` reads the piece's own descriptor. Past the end:
/// T{} and *length = 0. Walks the pieces in order; composite descriptors hold few.
template <class T, class Pieces, class Segment>
T piece_segment(const Pieces& pieces, IOByteCount offset, IOByteCount* length, Segment segment) {
  for (const auto& element : pieces) {
    const PieceRange p = as_piece(element);
    if (offset < p.length) {
      IOByteCount run = 0;
      const T s = segment(p.descriptor, p.offset + offset, &run);
      if (length != nullptr) {
        *length = s == T{} ? 0 : std::min(run, p.length - offset);
      }
      return s;
    }
    offset -= p.length;
  }
  if (length != nullptr) {
    *length = 0;
  }
  return T{};
}

template <class Pieces>
addr64_t physical_segment(const Pieces& pieces, IOByteCount offset, IOByteCount* length,
                          IOOptionBits options) {
  return piece_segment<addr64_t>(
      pieces, offset, length, [options](IOMemoryDescriptor* md, IOByteCount at, IOByteCount* run) {
        return md->getPhysicalSegment(at, run, options);
      });
}

template <class Pieces>
void* virtual_segment(const Pieces& pieces, IOByteCount offset, IOByteCount* length) {
  return piece_segment<void*>(
      pieces, offset, length, [](IOMemoryDescriptor* md, IOByteCount at, IOByteCount* run) {
        return md->kmbenchVirtualSegment(at, run);
      });
}

/// prepare() of a composite: every piece's descriptor, then `me` itself. When a piece fails,
/// completes those already prepared and answers the failure.
template <class Pieces>
IOReturn prepare_composite(IOMemoryDescriptor* me, const Pieces& pieces, IODirection direction) {
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const IOReturn r = as_piece(pieces[i]).descriptor->prepare(direction);
    if (r != kIOReturnSuccess) {
      while (i-- > 0) {
        as_piece(pieces[i]).descriptor->complete(direction);
      }
      return r;
    }
  }
  return me->IOMemoryDescriptor::prepare(direction);
}

/// complete() of a composite: `me` itself, then every piece's descriptor.
/// post: the last piece's answer; kIOReturnSuccess (and nothing done) when `me` is not prepared.
template <class Pieces>
IOReturn complete_composite(IOMemoryDescriptor* me, const Pieces& pieces, IODirection direction) {
  if (me->kmbenchWireCount() == 0) {
    return kIOReturnSuccess;
  }
  me->IOMemoryDescriptor::complete(direction);
  IOReturn r = kIOReturnSuccess;
  for (const auto& element : pieces) {
    r = as_piece(element).descriptor->complete(direction);
  }
  return r;
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
  _parent = dma::retained(parent);
  _start = offset;
  return true;
}

void IOSubMemoryDescriptor::free() {
  OSSafeReleaseNULL(_parent);
  IOMemoryDescriptor::free();
}

addr64_t IOSubMemoryDescriptor::getPhysicalSegment(IOByteCount offset, IOByteCount* length,
                                                   IOOptionBits options) {
  return physical_segment(one_piece(_parent, _start, _length), offset, length, options);
}

void* IOSubMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  return virtual_segment(one_piece(_parent, _start, _length), offset, length);
}

IOReturn IOSubMemoryDescriptor::prepare(IODirection forDirection) {
  return prepare_composite(this, one_piece(_parent, _start, _length), forDirection);
}

IOReturn IOSubMemoryDescriptor::complete(IODirection forDirection) {
  // The parent's answer.
  return complete_composite(this, one_piece(_parent, _start, _length), forDirection);
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
    _descriptors[i] = dma::retained(descriptors[i]);
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
  return physical_segment(std::span(_descriptors, _count), offset, length, options);
}

void* IOMultiMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  return virtual_segment(std::span(_descriptors, _count), offset, length);
}

IOReturn IOMultiMemoryDescriptor::prepare(IODirection forDirection) {
  return prepare_composite(this, std::span(_descriptors, _count), forDirection);
}

IOReturn IOMultiMemoryDescriptor::complete(IODirection forDirection) {
  complete_composite(this, std::span(_descriptors, _count), forDirection);
  return kIOReturnSuccess;  // the pieces' own answers are not passed on
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
  _pieces[_count++] = {dma::retained(descriptor), offset, length};
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
  return physical_segment(std::span(_pieces, _count), offset, length, options);
}

void* IOInterleavedMemoryDescriptor::kmbenchVirtualSegment(IOByteCount offset, IOByteCount* length) {
  return virtual_segment(std::span(_pieces, _count), offset, length);
}

IOReturn IOInterleavedMemoryDescriptor::prepare(IODirection forDirection) {
  return prepare_composite(this, std::span(_pieces, _count), forDirection);
}

IOReturn IOInterleavedMemoryDescriptor::complete(IODirection forDirection) {
  complete_composite(this, std::span(_pieces, _count), forDirection);
  return kIOReturnSuccess;  // the pieces' own answers are not passed on
}
