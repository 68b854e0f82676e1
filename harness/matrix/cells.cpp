// A matrix's cells once made: each as JSON (the index, a cell file), the run
// order, and the shards of it.
#include <algorithm>
#include <sstream>

#include "base/errors.h"
#include "harness/matrix/matrix.h"

namespace kmbench::matrix {

nlohmann::json cell_json(const Cell& c) {
  auto pairs = [](const std::vector<std::pair<std::string, std::string>>& v) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [k, x] : v) {
      out.push_back({k, x});
    }
    return out;
  };
  const nlohmann::json params = pairs(c.params);
  return {{"id", c.id},
          {"group", c.group},
          {"backend", c.backend},
          {"source_kind", c.source_kind},
          {"source", c.source},
          {"label", c.label},
          {"params", params},
          {"options", pairs(c.options)},
          {"backend_params", pairs(c.backend_params)},
          {"threads", c.threads},
          {"placement", c.placement},
          {"topology", c.topology},
          {"mode", c.mode},
          {"repetition", c.repetition},
          {"timeout_s", c.timeout_s},
          {"line", c.line},
          {"sweep", pairs(c.sweep)},
          {"base_label", c.base_label}};
}

Cell cell_from_json(const nlohmann::json& j) {
  Cell c;
  c.id = j.at("id");
  c.group = j.at("group");
  c.backend = j.at("backend");
  c.source_kind = j.at("source_kind");
  c.source = j.at("source");
  c.label = j.at("label");
  auto pairs = [](const nlohmann::json& list) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& p : list) out.emplace_back(p.at(0), p.at(1));
    return out;
  };
  c.params = pairs(j.at("params"));
  c.options = pairs(j.value("options", nlohmann::json::array()));
  c.backend_params = pairs(j.value("backend_params", nlohmann::json::array()));
  c.sweep = pairs(j.value("sweep", nlohmann::json::array()));
  c.base_label = j.value("base_label", std::string());
  c.threads = j.at("threads");
  c.placement = j.at("placement");
  c.topology = j.at("topology");
  c.mode = j.at("mode");
  c.repetition = j.at("repetition");
  c.timeout_s = j.at("timeout_s");
  c.line = j.value("line", 0u);
  return c;
}

std::vector<Cell> run_order(const std::vector<Cell>& cells, std::uint64_t seed) {
  // splitmix64: the same order from the same seed on every platform.
  std::uint64_t state = seed;
  auto next = [&state] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  unsigned reps = 0;
  for (const Cell& c : cells) {
    reps = std::max(reps, c.repetition + 1);
  }
  std::vector<Cell> out;
  for (unsigned rep = 0; rep < reps; ++rep) {
    std::vector<Cell> block;
    for (const Cell& c : cells) {
      if (c.repetition == rep) {
        block.push_back(c);
      }
    }
    for (std::size_t i = block.size(); i > 1; --i) {
      std::swap(block[i - 1], block[next() % i]);
    }
    out.insert(out.end(), block.begin(), block.end());
  }
  return out;
}

std::vector<Cell> shard_of(const std::vector<Cell>& ordered, unsigned k, unsigned n) {
  std::vector<Cell> out;
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    if (i % n == k - 1) {
      out.push_back(ordered[i]);
    }
  }
  return out;
}

std::pair<unsigned, unsigned> parse_shard(const std::string& text) {
  unsigned k = 0, n = 0;
  char slash = 0, extra = 0;
  std::istringstream in(text);
  // Digits only: reading "-1" into an unsigned wraps it to 2^32 - 1 instead of failing.
  if (text.find_first_not_of("0123456789/") != std::string::npos || !(in >> k >> slash >> n) || slash != '/' ||
      (in >> extra) || n == 0 || k == 0 || k > n) {
    throw UsageError("--shard '" + text + "' must be K/N with 1 <= K <= N (e.g. 2/4)");
  }
  return {k, n};
}

}  // namespace kmbench::matrix
