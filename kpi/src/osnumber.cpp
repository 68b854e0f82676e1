// OSNumber: a value masked to its width.
#include <libkern/c++/OSNumber.h>

OSDefineMetaClassAndStructors(OSNumber, OSObject);

namespace {
unsigned long long mask(unsigned int bits) { return bits >= 64 ? ~0ull : (1ull << bits) - 1; }
}  // namespace

OSNumber* OSNumber::withNumber(unsigned long long inValue, unsigned int numberOfBits) {
  OSNumber* me = new OSNumber;
  if (me != NULL && !me->init(inValue, numberOfBits)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool OSNumber::init(unsigned long long inValue, unsigned int numberOfBits) {
  if (!OSObject::init() || numberOfBits == 0 || numberOfBits > 64) {
    return false;
  }
  size = numberOfBits;
  value = inValue & mask(size);
  return true;
}

unsigned int OSNumber::numberOfBits() const { return size; }
unsigned int OSNumber::numberOfBytes() const { return (size + 7) / 8; }
unsigned char OSNumber::unsigned8BitValue() const { return static_cast<unsigned char>(value); }
unsigned short OSNumber::unsigned16BitValue() const { return static_cast<unsigned short>(value); }
unsigned int OSNumber::unsigned32BitValue() const { return static_cast<unsigned int>(value); }
unsigned long long OSNumber::unsigned64BitValue() const { return value; }
void OSNumber::setValue(unsigned long long inValue) { value = inValue & mask(size); }
void OSNumber::addValue(signed long long inValue) { setValue(value + static_cast<unsigned long long>(inValue)); }
bool OSNumber::isEqualTo(unsigned long long inValue) const { return value == (inValue & mask(size)); }

bool OSNumber::isEqualTo(const OSMetaClassBase* anObject) const {
  const OSNumber* n = OSDynamicCast(OSNumber, anObject);
  return n != NULL && n->value == value;
}
