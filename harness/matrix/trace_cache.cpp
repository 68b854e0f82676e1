// Captures imported once per run, cached by the hash of their bytes.
#include "harness/matrix/trace_cache.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "base/errors.h"
#include "harness/trace/trace.h"

namespace kmbench::matrix {
namespace fs = std::filesystem;
namespace {

constexpr const char* kHashName = "fnv1a-64";

/// The capture's bytes; throws InputError at the entry naming it.
std::string capture_bytes(const std::string& matrix, unsigned line, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  if (in) {
    buf << in.rdbuf();
  }
  if (!in || in.bad()) {
    throw InputError(matrix, line, "cannot read trace capture '" + path + "'");
  }
  return buf.str();
}

nlohmann::json info_of(const ops::Trace& t) {
  return nlohmann::json::parse(trace::info_json(t, trace::summarize(t)));
}

}  // namespace

bool replays_capture(const Cell& cell) {
  return cell.source_kind == "trace" && fs::path(cell.source).extension() != ".kmt";
}

CaptureCache::CaptureCache(const std::string& matrix_path, const std::vector<Cell>& cells, const std::string& run_dir)
    : run_dir_(run_dir) {
  std::vector<const Cell*> firsts;  // one cell per [[trace]] entry of a capture, in file order
  std::set<std::string> labels;
  for (const Cell& c : cells) {
    if (replays_capture(c) && labels.insert(c.label).second) {
      firsts.push_back(&c);
    }
  }
  std::sort(firsts.begin(), firsts.end(), [](const Cell* a, const Cell* b) { return a->line < b->line; });
  for (const Cell* first : firsts) {
    const Cell& c = *first;
    entries_.push_back({c.label, c.source, c.line});
    if (by_path_.contains(c.source)) {
      continue;
    }
    Capture& cap = by_path_[c.source];
    cap.hash = text_hash(capture_bytes(matrix_path, c.line, c.source));
    cap.kmt = "traces/" + cap.hash + ".kmt";
    const std::string cached = (fs::path(run_dir) / cap.kmt).string();
    if (fs::exists(cached)) {
      try {
        cap.info = info_of(trace::load(cached));
        cap.reused = true;
        continue;
      } catch (const InputError& e) {
        std::cerr << "kmbench run: " << e.what() << ": importing the capture again\n";
      }
    }
    try {
      cap.pending = std::make_unique<ops::Trace>(trace::import_file(c.source));
    } catch (const std::exception& e) {
      throw InputError(matrix_path, c.line, "cannot import trace capture '" + c.source + "': " + e.what());
    }
    if (cap.pending->op_count() == 0) {
      throw InputError(matrix_path, c.line, "trace capture '" + c.source + "' holds no allocation events");
    }
    cap.info = info_of(*cap.pending);
  }
}

void CaptureCache::write() {
  for (auto& [path, cap] : by_path_) {
    if (!cap.pending) {
      std::cerr << "kmbench run: " << path << " is imported already (" << cap.kmt << ")\n";
      continue;
    }
    const fs::path out = fs::path(run_dir_) / cap.kmt;
    fs::create_directories(out.parent_path());
    trace::save(*cap.pending, out.string());
    cap.pending.reset();
    std::cerr << "kmbench run: imported " << path << " (" << cap.info.value("events", 0) << " events, "
              << cap.info.value("ops", 0) << " ops) into " << out.string() << "\n";
  }
}

std::string CaptureCache::source_for(const Cell& cell) const {
  const auto it = by_path_.find(cell.source);
  if (!replays_capture(cell) || it == by_path_.end()) {
    return cell.source;
  }
  return fs::absolute(fs::path(run_dir_) / it->second.kmt).lexically_normal().string();
}

nlohmann::json CaptureCache::index_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Entry& e : entries_) {
    const Capture& cap = by_path_.at(e.path);
    out.push_back({{"label", e.label},
                   {"path", e.path},
                   {"line", e.line},
                   {"hash", cap.hash},
                   {"hash_function", kHashName},
                   {"kmt", cap.kmt},
                   {"reused", cap.reused},
                   {"info", cap.info}});
  }
  return out;
}

void CaptureCache::check_unchanged(const nlohmann::json& old_traces) const {
  if (!old_traces.is_array()) {
    return;
  }
  for (const nlohmann::json& old : old_traces) {
    const auto it = by_path_.find(old.value("path", ""));
    if (it != by_path_.end() && old.value("hash", "") != it->second.hash) {
      throw UsageError("trace capture " + it->first + " changed since this run began (" + kHashName + " " +
                       old.value("hash", "") + ", now " + it->second.hash + "): cannot resume " + run_dir_);
    }
  }
}

}  // namespace kmbench::matrix
