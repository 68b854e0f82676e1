#include "base/loaded_objects.h"

#include <elf.h>
#include <link.h>

#include <algorithm>
#include <cstring>

#include "base/process.h"

namespace kmbench::base {

std::string gnu_build_id(const char* p, const char* end) {
  while (p + sizeof(ElfW(Nhdr)) <= end) {
    ElfW(Nhdr) nh;
    std::memcpy(&nh, p, sizeof nh);
    const char* name = p + sizeof nh;
    const char* desc = name + ((nh.n_namesz + 3) & ~3u);
    if (desc > end || nh.n_descsz > static_cast<std::size_t>(end - desc)) break;
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
      return std::string(desc, std::min<std::size_t>(nh.n_descsz, 255));
    }
    p = desc + ((nh.n_descsz + 3) & ~3u);
  }
  return {};
}

namespace {

int add_object(dl_phdr_info* info, std::size_t, void* out) {
  auto& objects = *static_cast<std::vector<LoadedObject>*>(out);
  LoadedObject o;
  o.base = info->dlpi_addr;
  o.lo = ~std::uint64_t{0};
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const std::uint64_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0) {
      o.lo = std::min<std::uint64_t>(o.lo, start);
      o.hi = std::max<std::uint64_t>(o.hi, start + ph.p_memsz);
    } else if (ph.p_type == PT_NOTE && o.build_id.empty()) {
      const char* p = reinterpret_cast<const char*>(start);
      o.build_id = gnu_build_id(p, p + ph.p_memsz);
    }
  }
  const bool first = objects.empty();
  if (o.lo == ~std::uint64_t{0}) return 0;  // no code
  o.path = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (o.path.empty() && first) o.path = self_exe();
  objects.push_back(std::move(o));
  return 0;
}

}  // namespace

std::vector<LoadedObject> loaded_objects() {
  std::vector<LoadedObject> objects;
  dl_iterate_phdr(add_object, &objects);
  return objects;
}

}  // namespace kmbench::base
