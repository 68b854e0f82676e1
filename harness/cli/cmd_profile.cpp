// `kmbench trace profile` and `kmbench trace diff`: a capture's statistics
// as a shareable profile (docs/profile-format.md), and how far two loads are
// apart.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "base/file_io.h"
#include "harness/cli/command.h"
#include "harness/cli/import_options.h"
#include "harness/profile/profile.h"

namespace kmbench::cli {
namespace {

/// A profile file (JSON) or anything the importer reads, profiled with its sites in clear.
profile::Profile load_side(const std::string& path, const ImportArgs& args) {
  const trace::Input in(path);
  const std::string_view head = in.head(64);
  const std::size_t first = head.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && head[first] == '{') {
    return profile::from_json(in.bytes(), in.name());
  }
  profile::BuildOptions o;
  o.sites = profile::Sites::clear;  // in memory only: two captures compare by their site names
  return profile::build(trace::import_file(in, path, to_options(args)), o);
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void print_distance(const profile::Profile& a, const profile::Profile& b, const profile::Distance& d,
                    const std::string& name_a, const std::string& name_b) {
  std::cout << "A: " << name_a << " (" << a.source << ", " << a.allocs << " allocations, " << a.classes.size()
            << " classes, peak live " << a.peak_live_bytes << " B)\n"
            << "B: " << name_b << " (" << b.source << ", " << b.allocs << " allocations, " << b.classes.size()
            << " classes, peak live " << b.peak_live_bytes << " B)\n\n"
            << "Kolmogorov-Smirnov distance (0 = same distribution, 1 = disjoint)\n"
            << "  size             " << fixed(d.ks_size, 4) << "\n"
            << "  lifetime (ns)    " << fixed(d.ks_lifetime_ns, 4) << "\n"
            << "  lifetime (ops)   " << fixed(d.ks_lifetime_ops, 4) << "\n"
            << "  inter-arrival    " << fixed(d.ks_interarrival, 4) << "\n"
            << "peak live bytes, B/A   " << fixed(d.peak_live_ratio, 3) << "\n"
            << "allocations, B/A       " << fixed(d.allocs_ratio, 3) << "\n"
            << "class overlap          " << fixed(d.class_overlap, 3) << " of allocations in " << d.classes_shared
            << " shared classes (of " << d.classes_a << " and " << d.classes_b << "), matched by "
            << (d.classes_by_id ? "class id" : "kind, cache and most frequent size") << "\n";
}

nlohmann::ordered_json distance_json(const profile::Profile& a, const profile::Profile& b,
                                     const profile::Distance& d) {
  auto side = [](const profile::Profile& p) {
    return nlohmann::ordered_json{{"source", p.source},
                                  {"allocs", p.allocs},
                                  {"classes", p.classes.size()},
                                  {"peak_live_bytes", p.peak_live_bytes}};
  };
  return {{"a", side(a)},
          {"b", side(b)},
          {"ks",
           {{"size", d.ks_size},
            {"lifetime_ns", d.ks_lifetime_ns},
            {"lifetime_ops", d.ks_lifetime_ops},
            {"interarrival_ns", d.ks_interarrival}}},
          {"peak_live_ratio", d.peak_live_ratio},
          {"allocs_ratio", d.allocs_ratio},
          {"class_overlap", d.class_overlap},
          {"classes_shared", d.classes_shared},
          {"classes_matched_by", d.classes_by_id ? "id" : "kind_cache_mode_size"}};
}

}  // namespace

void add_profile_commands(CLI::App* trace_cmd) {
  {
    auto args = std::make_shared<ImportArgs>();
    auto in = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto no_sites = std::make_shared<bool>(false);
    auto keep_sites = std::make_shared<bool>(false);
    auto* cmd = trace_cmd->add_subcommand(
        "profile", "Write a capture's statistics as a shareable profile (sizes, lifetimes, rates, CPUs, flags, "
                   "live set per class) without its pointers, tasks, times or site names");
    cmd->add_option("input", *in, "A capture or .kmt trace (- for stdin)")->required();
    cmd->add_option("-o,--output", *out, "The profile to write (NAME.kprof.json)")->required();
    auto* merged = cmd->add_flag("--no-sites", *no_sites, "Merge call sites into classes by size and lifetime");
    cmd->add_flag("--keep-sites", *keep_sites, "Keep call sites in clear (for internal use only)")->excludes(merged);
    add_import_options(cmd, *args);
    cmd->callback([=] {
      base::refuse_output_over_input(*out, *in);
      profile::BuildOptions o;
      o.sites = *no_sites ? profile::Sites::merged : *keep_sites ? profile::Sites::clear : profile::Sites::hashed;
      const profile::Profile p = profile::build(trace::import_file(*in, to_options(*args)), o);
      base::write_file_atomic(*out, profile::to_json(p));
      std::cerr << "kmbench trace: profile " << *out << ": " << p.allocs << " allocations in " << p.classes.size()
                << " classes, sites " << profile::sites_name(p.sites) << ", peak live " << p.peak_live_bytes
                << " B\n";
    });
  }
  {
    auto args = std::make_shared<ImportArgs>();
    auto a = std::make_shared<std::string>();
    auto b = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    auto* cmd = trace_cmd->add_subcommand(
        "diff", "How far apart two loads are: KS distances of sizes, lifetimes and inter-arrival gaps, the ratio "
                "of live-set peaks and the class overlap (captures, .kmt traces or profiles)");
    cmd->add_option("a", *a, "A capture, .kmt trace or profile")->required();
    cmd->add_option("b", *b, "Another")->required();
    cmd->add_flag("--json", *json, "Print one JSON object");
    add_import_options(cmd, *args);
    cmd->callback([=] {
      const profile::Profile pa = load_side(*a, *args), pb = load_side(*b, *args);
      const profile::Distance d = profile::distance(pa, pb);
      if (*json) {
        std::cout << distance_json(pa, pb, d).dump(1) << "\n";
      } else {
        print_distance(pa, pb, d, *a, *b);
      }
    });
  }
}

}  // namespace kmbench::cli
