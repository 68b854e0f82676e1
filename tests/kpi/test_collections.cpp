// libkern's collections and IOService's property table on every in-process
// backend: OSString, OSSymbol uniqueness, OSDictionary's retain rules, and
// IOService::init(OSDictionary*) as the seed's driver pattern uses it.
#include <IOKit/IOService.h>
#include <libkern/c++/OSDictionary.h>
#include <libkern/c++/OSNumber.h>
#include <libkern/c++/OSString.h>
#include <libkern/c++/OSSymbol.h>

#include <string>
#include <vector>

#include "tests/kpi/kpi_test.h"

namespace kmbench::testing {
namespace {

class Collections : public KpiTest {};

std::int64_t live(const char* cls) { return kpi::class_usage(cls).live_instances; }

TEST_P(Collections, StringsCopyTheirCharactersIntoBackendMemory) {
  char text[] = "com.kmbench.test";
  OSString* s = OSString::withCString(text);
  ASSERT_NE(s, nullptr);
  text[0] = 'X';
  EXPECT_STREQ(s->getCStringNoCopy(), "com.kmbench.test");
  EXPECT_EQ(s->getLength(), 16u);
  EXPECT_TRUE(s->isEqualTo("com.kmbench.test"));
  EXPECT_FALSE(s->isEqualTo("com.kmbench.tes"));
  EXPECT_EQ(family("IOMalloc").live_bytes, 17) << "the characters and their NUL";
  s->release();
  EXPECT_EQ(OSString::withCString(nullptr), nullptr);
}

TEST_P(Collections, SymbolsAreUniqueAndLeaveThePoolOnTheirLastRelease) {
  const OSSymbol* a = OSSymbol::withCString("dma-parent");
  const OSSymbol* b = OSSymbol::withCString("dma-parent");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a, b) << "one symbol per string";
  EXPECT_EQ(a->getRetainCount(), 2);
  EXPECT_EQ(live("OSSymbol"), 1);
  OSString* str = OSString::withCString("dma-parent");
  EXPECT_TRUE(a->isEqualTo(str)) << "a symbol equals a string of its characters";
  EXPECT_EQ(OSSymbol::withString(str), a);
  a->release();
  str->release();
  b->release();
  EXPECT_EQ(a->getRetainCount(), 1);
  const OSSymbol* found = OSSymbol::existingSymbolForCString("dma-parent");
  EXPECT_EQ(found, a);
  found->release();
  a->release();
  EXPECT_EQ(OSSymbol::existingSymbolForCString("dma-parent"), nullptr) << "the pool holds no reference";
  EXPECT_EQ(live("OSSymbol"), 0);
}

TEST_P(Collections, ADictionaryRetainsWhatItHoldsAndReleasesWhatItDrops) {
  OSDictionary* dict = OSDictionary::withCapacity(2);
  ASSERT_NE(dict, nullptr);
  OSString* first = OSString::withCString("first");
  OSString* second = OSString::withCString("second");
  ASSERT_TRUE(dict->setObject("key", first));
  EXPECT_EQ(first->getRetainCount(), 2) << "setObject retains the value";
  EXPECT_EQ(dict->getObject("key"), first);
  EXPECT_EQ(dict->getCount(), 1u);

  ASSERT_TRUE(dict->setObject("key", second));
  EXPECT_EQ(first->getRetainCount(), 1) << "the replaced value is released";
  EXPECT_EQ(second->getRetainCount(), 2);
  EXPECT_EQ(dict->getCount(), 1u);

  const OSSymbol* key = OSSymbol::withCString("key");
  EXPECT_EQ(key->getRetainCount(), 2) << "the dictionary holds the key too";
  EXPECT_EQ(dict->getObject(key), second);
  dict->removeObject(key);
  EXPECT_EQ(second->getRetainCount(), 1);
  EXPECT_EQ(key->getRetainCount(), 1);
  EXPECT_EQ(dict->getObject("key"), nullptr);
  EXPECT_EQ(dict->getCount(), 0u);

  EXPECT_FALSE(dict->setObject("null", nullptr));
  EXPECT_FALSE(dict->setObject(static_cast<const char*>(nullptr), first));
  EXPECT_EQ(dict->getObject("never-made"), nullptr);
  EXPECT_EQ(OSSymbol::existingSymbolForCString("never-made"), nullptr) << "a lookup makes no symbol";

  ASSERT_TRUE(dict->setObject("again", first));
  dict->release();
  EXPECT_EQ(first->getRetainCount(), 1) << "the dictionary's free releases its values";
  key->release();
  first->release();
  second->release();
  EXPECT_EQ(live("OSDictionary"), 0);
  EXPECT_EQ(live("OSSymbol"), 0);
  EXPECT_EQ(live("OSString"), 0);
}

TEST_P(Collections, ADictionaryGrowsAndKeepsItsOrderOnRemoval) {
  OSDictionary* dict = OSDictionary::withCapacity(1);
  ASSERT_NE(dict, nullptr);
  std::vector<OSString*> values;
  for (int i = 0; i < 100; ++i) {
    const std::string name = std::string(1, 'k').append(std::to_string(i));
    values.push_back(OSString::withCString(name.c_str()));
    ASSERT_TRUE(dict->setObject(name.c_str(), values.back()));
  }
  EXPECT_EQ(dict->getCount(), 100u);
  EXPECT_GE(dict->getCapacity(), 100u);
  dict->removeObject("k50");
  EXPECT_EQ(dict->getCount(), 99u);
  for (int i = 0; i < 100; ++i) {
    const std::string name = std::string(1, 'k').append(std::to_string(i));
    EXPECT_EQ(dict->getObject(name.c_str()), i == 50 ? nullptr : values[i]) << name;
  }
  OSDictionary* copy = OSDictionary::withDictionary(dict);
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->getCount(), 99u);
  EXPECT_EQ(values[0]->getRetainCount(), 3) << "the copy retains each value again";
  dict->flushCollection();
  EXPECT_EQ(dict->getCount(), 0u);
  EXPECT_EQ(values[0]->getRetainCount(), 2);
  copy->release();
  dict->release();
  for (OSString* v : values) {
    EXPECT_EQ(v->getRetainCount(), 1);
    v->release();
  }
}

TEST_P(Collections, NumbersKeepTheirWidth) {
  OSNumber* n = OSNumber::withNumber(0x1ff, 8);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->unsigned64BitValue(), 0xffu) << "truncated to 8 bits";
  EXPECT_EQ(n->numberOfBytes(), 1u);
  n->addValue(1);
  EXPECT_EQ(n->unsigned8BitValue(), 0u) << "wraps at its width";
  OSNumber* big = OSNumber::withNumber(~0ull, 64);
  EXPECT_EQ(big->unsigned32BitValue(), 0xffffffffu);
  EXPECT_TRUE(big->isEqualTo(~0ull));
  EXPECT_FALSE(n->isEqualTo(big));
  EXPECT_EQ(OSNumber::withNumber(1, 0), nullptr);
  EXPECT_EQ(OSNumber::withNumber(1, 65), nullptr);
  n->release();
  big->release();
}

TEST_P(Collections, AServiceTakesItsPropertyTableFromInit) {
  OSDictionary* params = OSDictionary::withCapacity(4);
  OSString* mode = OSString::withCString("fast");
  ASSERT_TRUE(params->setObject("Mode", mode));

  IOService* withParams = new IOService;
  ASSERT_NE(withParams, nullptr);
  ASSERT_TRUE(withParams->init(params));
  EXPECT_EQ(params->getRetainCount(), 2) << "init(dictionary) retains the table";
  EXPECT_EQ(withParams->getProperty("Mode"), mode);
  EXPECT_EQ(withParams->getPropertyTable(), params);

  IOService* plain = new IOService;
  ASSERT_TRUE(plain->init());
  EXPECT_EQ(plain->getProperty("Mode"), nullptr);
  ASSERT_TRUE(plain->setProperty("Mode", mode));
  EXPECT_EQ(plain->getProperty("Mode"), mode);
  plain->removeProperty("Mode");
  EXPECT_EQ(plain->getProperty("Mode"), nullptr);

  ASSERT_TRUE(plain->attach(withParams));
  EXPECT_FALSE(plain->attach(withParams)) << "one provider";
  EXPECT_EQ(plain->getProvider(), withParams);
  EXPECT_EQ(plain->getWorkLoop(), nullptr) << "no work loop up the chain";
  plain->detach(withParams);
  EXPECT_EQ(plain->getProvider(), nullptr);

  plain->release();
  withParams->release();
  EXPECT_EQ(params->getRetainCount(), 1);
  params->release();
  mode->release();
  EXPECT_EQ(live("IOService"), 0);
}

KMBENCH_KPI_ON_EVERY_BACKEND(Collections);

}  // namespace
}  // namespace kmbench::testing
