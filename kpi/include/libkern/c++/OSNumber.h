// OSNumber (libkern/c++/OSNumber.h): an integer of 8 to 64 bits as an
// OSObject, as drivers keep numbers in property tables.
#ifndef KMBENCH_KPI_LIBKERN_OSNUMBER_H
#define KMBENCH_KPI_LIBKERN_OSNUMBER_H

#include <libkern/c++/OSObject.h>

class OSNumber : public OSObject {
  OSDeclareDefaultStructors(OSNumber);

 public:
  /// post: a number holding value truncated to numberOfBits (1..64), or NULL.
  static OSNumber* withNumber(unsigned long long value, unsigned int numberOfBits);
  virtual bool init(unsigned long long value, unsigned int numberOfBits);

  virtual unsigned int numberOfBits() const;
  virtual unsigned int numberOfBytes() const;
  virtual unsigned char unsigned8BitValue() const;
  virtual unsigned short unsigned16BitValue() const;
  virtual unsigned int unsigned32BitValue() const;
  virtual unsigned long long unsigned64BitValue() const;
  virtual void setValue(unsigned long long value);
  virtual void addValue(signed long long value);
  virtual bool isEqualTo(unsigned long long value) const;
  bool isEqualTo(const OSMetaClassBase* anObject) const override;

 private:
  unsigned long long value = 0;
  unsigned int size = 0;  // bits
};

#endif
