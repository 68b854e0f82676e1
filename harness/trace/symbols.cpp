#include "harness/trace/symbols.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kmbench::trace {
namespace {

/// A read-only mapping of a whole file; empty when it cannot be opened.
class Mapped {
 public:
  explicit Mapped(const std::string& path) {
    // A log names the files of the machine it was recorded on: here the path
    // may be a FIFO or a device, whose open would wait for a writer.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const unsigned char*>(p);
        size_ = static_cast<std::size_t>(st.st_size);
      }
    }
    ::close(fd);
  }
  ~Mapped() {
    if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  /// A pointer to n bytes at `offset`, or nullptr when they are not all in the file.
  const unsigned char* at(std::uint64_t offset, std::uint64_t n) const {
    if (data_ == nullptr || offset > size_ || n > size_ - offset) return nullptr;
    return data_ + offset;
  }

 private:
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

/// The section headers of a little-endian ELF64 file; none when it is not one.
std::vector<Elf64_Shdr> sections_of(const Mapped& f) {
  const unsigned char* h = f.at(0, sizeof(Elf64_Ehdr));
  if (h == nullptr || std::memcmp(h, ELFMAG, SELFMAG) != 0 || h[EI_CLASS] != ELFCLASS64 ||
      h[EI_DATA] != ELFDATA2LSB) {
    return {};
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, h, sizeof eh);
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) return {};
  const unsigned char* sh = f.at(eh.e_shoff, std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr));
  if (sh == nullptr) return {};
  std::vector<Elf64_Shdr> out(eh.e_shnum);
  std::memcpy(out.data(), sh, out.size() * sizeof(Elf64_Shdr));
  return out;
}

std::string build_id_of(const Mapped& f, const std::vector<Elf64_Shdr>& sections) {
  for (const Elf64_Shdr& s : sections) {
    if (s.sh_type != SHT_NOTE) continue;
    if (const auto* p = reinterpret_cast<const char*>(f.at(s.sh_offset, s.sh_size))) {
      std::string id = base::gnu_build_id(p, p + s.sh_size);
      if (!id.empty()) return id;
    }
  }
  return {};
}

std::string demangled(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (d == nullptr) return name;
  std::string out(d);
  std::free(d);
  return out;
}

std::string base_name(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

/// A module's functions, by link-time start address.
struct Symbolizer::Table {
  struct Function {
    std::uint64_t start, size;
    std::uint32_t name;  // into names
  };
  std::vector<Function> functions;
  std::vector<std::string> names;

  const Function* find(std::uint64_t address) const {
    auto it = std::upper_bound(functions.begin(), functions.end(), address,
                               [](std::uint64_t a, const Function& f) { return a < f.start; });
    if (it == functions.begin()) return nullptr;
    --it;
    return address < it->start + it->size ? &*it : nullptr;
  }
};

Symbolizer::Symbolizer(std::vector<Module> modules, bool read_files)
    : modules_(std::move(modules)), tables_(modules_.size()), tried_(modules_.size(), false),
      read_files_(read_files) {}

Symbolizer::~Symbolizer() = default;

const Symbolizer::Table* Symbolizer::table_of(std::size_t m) {
  if (tried_[m]) return tables_[m].get();
  tried_[m] = true;
  const Mapped f(modules_[m].path);
  const std::vector<Elf64_Shdr> sections = sections_of(f);
  if (sections.empty()) {
    ++counts_.unreadable_objects;
    return nullptr;
  }
  if (!modules_[m].build_id.empty() && build_id_of(f, sections) != modules_[m].build_id) {
    ++counts_.build_id_mismatches;
    return nullptr;
  }
  auto table = std::make_unique<Table>();
  for (const Elf64_Shdr& s : sections) {
    if ((s.sh_type != SHT_SYMTAB && s.sh_type != SHT_DYNSYM) || s.sh_entsize != sizeof(Elf64_Sym) ||
        s.sh_link >= sections.size()) {
      continue;
    }
    const Elf64_Shdr& strtab = sections[s.sh_link];
    const unsigned char* syms = f.at(s.sh_offset, s.sh_size);
    const unsigned char* strs = f.at(strtab.sh_offset, strtab.sh_size);
    if (syms == nullptr || strs == nullptr) continue;
    for (std::uint64_t i = 0; i < s.sh_size / sizeof(Elf64_Sym); ++i) {
      Elf64_Sym sym;
      std::memcpy(&sym, syms + i * sizeof sym, sizeof sym);
      const unsigned type = ELF64_ST_TYPE(sym.st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF || sym.st_size == 0 ||
          sym.st_name >= strtab.sh_size) {
        continue;
      }
      const char* name = reinterpret_cast<const char*>(strs + sym.st_name);
      const std::size_t len = strnlen(name, strtab.sh_size - sym.st_name);
      table->functions.push_back({sym.st_value, sym.st_size, static_cast<std::uint32_t>(table->names.size())});
      table->names.emplace_back(name, len);
    }
  }
  // .symtab and .dynsym name the same functions: keep one of each start.
  std::stable_sort(table->functions.begin(), table->functions.end(),
                   [](const Table::Function& a, const Table::Function& b) { return a.start < b.start; });
  table->functions.erase(std::unique(table->functions.begin(), table->functions.end(),
                                     [](const Table::Function& a, const Table::Function& b) {
                                       return a.start == b.start;
                                     }),
                         table->functions.end());
  tables_[m] = std::move(table);
  return tables_[m].get();
}

std::string Symbolizer::name(std::uint64_t address) {
  for (std::size_t m = 0; m < modules_.size(); ++m) {
    const Module& mod = modules_[m];
    if (address < mod.lo || address >= mod.hi) continue;
    const std::uint64_t link = address - mod.base;
    // A return address may lie just past a call that ends its function (a noreturn call): look up the call.
    const Table* t = read_files_ ? table_of(m) : nullptr;
    const Table::Function* fn = t != nullptr ? t->find(link - 1) : nullptr;
    const std::string object = m == 0 ? "" : " [" + base_name(mod.path) + "]";
    if (fn == nullptr) {
      ++counts_.unnamed;
      return base_name(mod.path) + "+" + hex(link);
    }
    return demangled(t->names[fn->name].c_str()) + "+" + hex(link - fn->start) + "/" + hex(fn->size) + object;
  }
  ++counts_.unnamed;
  return hex(address);
}

}  // namespace kmbench::trace
