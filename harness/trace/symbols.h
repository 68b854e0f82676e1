// Names the code addresses a recording holds (return addresses of KPI calls)
// as ftrace names call sites, function+0xoffset/0xsize, from the ELF symbol
// tables of the objects the recorded process had loaded. It reads the files
// on disk after the run, so a recording cut short by a crash gets names too;
// a file whose GNU build id differs from the recorded one is not trusted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/loaded_objects.h"

namespace kmbench::trace {

class Symbolizer {
 public:
  /// A loaded object as the recording saw it (the program first).
  using Module = base::LoadedObject;

  /// `read_files` false: no file is opened and every name is module+0xoffset.
  Symbolizer(std::vector<Module> modules, bool read_files);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  /// "func+0x1f/0x80" (with " [libfoo.so]" for a shared object), else
  /// "object+0xoffset" when no symbol covers it, "0x..." outside every object.
  std::string name(std::uint64_t address);

  struct Counts {
    std::uint64_t unreadable_objects = 0;  // file missing or not ELF
    std::uint64_t build_id_mismatches = 0; // the file on disk is not the one that ran
    std::uint64_t unnamed = 0;             // name() calls that found no function (object+0x.., 0x..)
  };
  Counts counts() const { return counts_; }

 private:
  struct Table;
  const Table* table_of(std::size_t module);

  std::vector<Module> modules_;
  std::vector<std::unique_ptr<Table>> tables_;  // per module, read on first use
  std::vector<bool> tried_;
  bool read_files_;
  Counts counts_;
};

}  // namespace kmbench::trace
