// Matrix files: expansion into cells, rejections naming the line, run order and shards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "allocators/any_backend.h"
#include "base/errors.h"
#include "harness/matrix/matrix.h"
#include "harness/replay/option_table.h"
#include "harness/trace/trace.h"

namespace kmbench::matrix {
namespace {

Catalog test_catalog() {
  Catalog c;
  c.backends = {"system", "slab", "zones"};
  c.workloads = {{"nic", {"packets", "queues", "seed"}}, {"churn", {}}};
  c.real_nodes = 1;
  return c;
}

Matrix parse(const std::string& text) { return parse_matrix(text, "m.toml", test_catalog()); }

/// The message of the InputError that text raises ("" when it parses).
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kBase = R"(name = "t"
seed = 9
backends = ["system", "slab"]
threads = [1, 2]
repetitions = 3

[[workload]]
name = "nic"
params = { packets = 100, seed = 4 }

[[workload]]
name = "churn"
threads = 1
backends = "zones"
)";

TEST(MatrixFile, ExpandsEveryAxis) {
  const Matrix m = parse(kBase);
  EXPECT_EQ(m.name, "t");
  EXPECT_EQ(m.seed, 9u);
  EXPECT_EQ(m.cells.size(), 2u * 2 * 3 + 1u * 1 * 3);
  std::set<std::string> ids;
  for (const Cell& c : m.cells) {
    ids.insert(c.id);
    EXPECT_EQ(c.placement, "local");
    EXPECT_EQ(c.topology, "real");
  }
  EXPECT_EQ(ids.size(), m.cells.size());
  const Cell& first = m.cells.front();
  EXPECT_EQ(first.source, "nic");
  ASSERT_EQ(first.params.size(), 2u);
  EXPECT_EQ(first.params[0], (std::pair<std::string, std::string>{"packets", "100"}));
  EXPECT_EQ(first.line, 7u);
  EXPECT_EQ(m.cells.back().backend, "zones");
  EXPECT_EQ(m.cells.back().threads, 1u);
}

TEST(MatrixFile, DefaultsToFiveRepetitions) {
  const Matrix m = parse("backends = [\"system\"]\n[[workload]]\nname = \"churn\"\n");
  EXPECT_EQ(m.cells.size(), 5u);
}

TEST(MatrixFile, RejectsUnknownBackendNamingTheLine) {
  const std::string e = error_of("backends = [\"system\",\n  \"tcmalloc\"]\n[[workload]]\nname = \"nic\"\n");
  EXPECT_NE(e.find("m.toml:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown backend 'tcmalloc'"), std::string::npos) << e;
}

TEST(MatrixFile, RejectsUnknownWorkload) {
  const std::string e = error_of("backends = [\"system\"]\n\n[[workload]]\nname = \"floppy\"\n");
  EXPECT_NE(e.find("m.toml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown workload 'floppy'"), std::string::npos) << e;
}

TEST(MatrixFile, RejectsUnknownKeys) {
  std::string e = error_of("backends = [\"system\"]\nthread = 2\n[[workload]]\nname = \"nic\"\n");
  EXPECT_NE(e.find("m.toml:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'thread'"), std::string::npos) << e;
  e = error_of("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\ncolour = 1\n");
  EXPECT_NE(e.find("m.toml:4:"), std::string::npos) << e;
}

TEST(MatrixFile, RejectsUnknownWorkloadParameter) {
  const std::string e =
      error_of("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\nparams = { packets = 1, mtu = 9000 }\n");
  EXPECT_NE(e.find("m.toml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("no parameter 'mtu'"), std::string::npos) << e;
}

TEST(MatrixFile, RejectsImpossibleValues) {
  for (const char* bad : {"threads = 0", "threads = [1, -2]", "repetitions = 0", "timeout_s = -1",
                          "placements = [\"far\"]", "mode = \"slow\"", "threads = \"two\"",
                          "topology = \"synthetic:no such thing\"", "topology = \"moon\""}) {
    const std::string e = error_of(std::string("backends = [\"system\"]\n") + bad +
                                   "\n[[workload]]\nname = \"churn\"\n");
    EXPECT_NE(e.find("m.toml:2:"), std::string::npos) << bad << " → " << e;
  }
}

// Every cell of such an entry failed at run time (exit 1), and a seed of -1 ran as 2^64 - 1.
TEST(MatrixFile, RejectsAWorkloadParameterValueBeforeAnyCellRuns) {
  for (const auto& [bad, why] :
       {std::pair{"packets = -5", "parameter packets='-5' is not a non-negative number"},
        std::pair{"packets = [100, \"many\"]", "packets='many' is not a non-negative number"},
        std::pair{"seed = -1", "seed '-1' is not a whole number"},
        // a value in its form but out of the generator's range: a sweep point too
        std::pair{"packets = [100, 200], queues = [2, 5000]", "parameter queues='5000' is above 4096 streams"}}) {
    const std::string e =
        error_of(std::string("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\nparams = { ") + bad + " }\n");
    EXPECT_NE(e.find("m.toml:4:"), std::string::npos) << bad << " → " << e;
    EXPECT_NE(e.find(why), std::string::npos) << bad << " → " << e;
  }
}

TEST(MatrixFile, RefusesASweepOfMoreCellsThanARunCanHoldBeforeMakingThem) {
  std::string values = "[";
  for (int i = 0; i < 40; ++i) values += (i ? ", " : "") + std::to_string(1000 + i);
  values += "]";
  const std::string e = error_of(
      "backends = [\"system\"]\nrepetitions = 100\n[[workload]]\nname = \"nic\"\n"
      "params = { packets = " +
      values + ", seed = " + values + " }\n");
  EXPECT_NE(e.find("m.toml:5: the matrix would have 160000 cells (the most is 100000)"), std::string::npos) << e;
}

TEST(MatrixFile, RemotePlacementNeedsTwoNodes) {
  std::string e = error_of("backends = [\"system\"]\nplacements = [\"local\", \"remote\"]\n"
                           "[[workload]]\nname = \"churn\"\n");
  EXPECT_NE(e.find("needs two NUMA nodes"), std::string::npos) << e;
  EXPECT_NE(e.find("m.toml:3:"), std::string::npos) << e;
  const Matrix m = parse("backends = [\"system\"]\nplacements = [\"local\", \"remote\", \"interleaved\"]\n"
                         "topology = \"synthetic:pack:2 [numa] pu:1\"\nrepetitions = 1\n"
                         "[[workload]]\nname = \"churn\"\n");
  EXPECT_EQ(m.cells.size(), 3u);
  for (const Cell& c : m.cells) {
    const auto argv = cell_command(c, "k", "o.json");
    const bool node = std::find(argv.begin(), argv.end(), "--node") != argv.end();
    EXPECT_EQ(node, c.placement != "local") << c.id;
  }
}

TEST(MatrixFile, RejectsSyntaxErrorsWithTheirLine) {
  const std::string e = error_of("backends = [\"system\"]\n\nthreads = [1,\n");
  EXPECT_NE(e.find("m.toml:"), std::string::npos) << e;
  EXPECT_FALSE(e.empty());
}

TEST(MatrixFile, RejectsDuplicateLabelsAndEmptyMatrix) {
  EXPECT_NE(error_of("backends = [\"system\"]\n[[workload]]\nname = \"churn\"\n[[workload]]\nname = \"churn\"\n")
                .find("used twice"),
            std::string::npos);
  EXPECT_NE(error_of("backends = [\"system\"]\n").find("no [[workload]]"), std::string::npos);
  EXPECT_NE(error_of("backends = [\"system\", \"system\"]\n[[workload]]\nname = \"churn\"\n").find("twice"),
            std::string::npos);
}

TEST(MatrixFile, TraceMustExistAndDecode) {
  const auto dir = std::filesystem::temp_directory_path() / ("kmbench_test_matrix_trace." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  ops::Trace t;
  t.streams.resize(1);
  trace::save(t, (dir / "x.kmt").string());
  const std::string text = "backends = [\"system\"]\n[[trace]]\npath = \"x.kmt\"\n";
  const Matrix m = parse_matrix(text, (dir / "m.toml").string(), test_catalog());
  EXPECT_EQ(m.cells.front().source, (dir / "x.kmt").string());
  EXPECT_EQ(m.cells.front().label, "x");
  EXPECT_THROW(parse_matrix("backends = [\"system\"]\n[[trace]]\npath = \"nope.kmt\"\n",
                            (dir / "m.toml").string(), test_catalog()),
               InputError);
  // A damaged .kmt stops the matrix at load, by the entry's line and the file's byte, not each cell at run time.
  std::filesystem::resize_file(dir / "x.kmt", std::filesystem::file_size(dir / "x.kmt") - 1);
  std::string e;
  try {
    parse_matrix("backends = [\"system\"]\nrepetitions = 1\n\n[[trace]]\npath = \"x.kmt\"\n", (dir / "m.toml").string(),
                 test_catalog());
  } catch (const InputError& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("m.toml:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("x.kmt: byte offset"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

TEST(MatrixFile, ADirectoryOrAMissingFileIsNamedForWhatItIs) {
  const auto dir = std::filesystem::temp_directory_path() / ("kmbench_test_matrix_dir." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto error_loading = [](const std::string& path) {
    try {
      load_matrix(path, test_catalog());
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_loading(dir.string()),
            dir.string() + ": is a directory, not a matrix file (the run directory goes after -o)");
  EXPECT_EQ(error_loading((dir / "none.toml").string()),
            (dir / "none.toml").string() + ": cannot read the matrix file: No such file or directory");
  std::filesystem::remove_all(dir);
}

TEST(MatrixFile, NodesAnEntryNamesAreInEachOfItsTopologies) {
  const std::string head = "backends = [\"system\"]\nrepetitions = 1\n[[workload]]\nname = \"churn\"\n";
  const std::string two = "topology = \"synthetic:pack:2 [numa] pu:1\"\n";
  std::string e = error_of(head + "replay = { node = 1 }\n");
  EXPECT_NE(e.find("m.toml:5: 'node = 1' names node 1, but topology 'real' has 1 node (0)"), std::string::npos) << e;
  e = error_of(head + two + "replay = { pressure = \"cap=50%;take=10%,node=2\" }\n");
  EXPECT_NE(e.find("m.toml:6: pressure clause 'take=10%,node=2' names node 2"), std::string::npos) << e;
  EXPECT_NE(e.find("has 2 nodes (0 to 1)"), std::string::npos) << e;
  // Each topology of the entry: the real one-node machine lacks node 1.
  e = error_of(head + "topology = [\"synthetic:pack:2 [numa] pu:1\", \"real\"]\nreplay = { node = 1 }\n");
  EXPECT_NE(e.find("topology 'real'"), std::string::npos) << e;
  EXPECT_EQ(error_of(head + two + "replay = { node = 1, pressure = \"cap=50%,node=1\" }\n"), "");
  EXPECT_EQ(error_of(head + "replay = { node = -1, pressure = \"cap=50%\" }\n"), "");
}

TEST(RunOrder, SeededInterleavedAndComplete) {
  const Matrix m = parse(kBase);
  const auto a = run_order(m.cells, 1), b = run_order(m.cells, 1), c = run_order(m.cells, 2);
  auto ids = [](const std::vector<Cell>& v) {
    std::vector<std::string> out;
    for (const Cell& x : v) out.push_back(x.id);
    return out;
  };
  EXPECT_EQ(ids(a), ids(b));
  EXPECT_NE(ids(a), ids(c));
  auto sorted_a = ids(a), sorted_m = ids(m.cells);
  std::sort(sorted_a.begin(), sorted_a.end());
  std::sort(sorted_m.begin(), sorted_m.end());
  EXPECT_EQ(sorted_a, sorted_m);
  // Repetition r of every group runs before repetition r+1 of any.
  for (std::size_t i = 1; i < a.size(); ++i) {
    EXPECT_LE(a[i - 1].repetition, a[i].repetition);
  }
}

TEST(Shards, PartitionTheRunOrder) {
  const auto ordered = run_order(parse(kBase).cells, 3);
  std::multiset<std::string> seen;
  for (unsigned k = 1; k <= 4; ++k) {
    for (const Cell& c : shard_of(ordered, k, 4)) seen.insert(c.id);
  }
  EXPECT_EQ(seen.size(), ordered.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), ordered.size());
  EXPECT_EQ(parse_shard("2/4"), (std::pair<unsigned, unsigned>{2, 4}));
  for (const char* bad : {"0/4", "5/4", "1/0", "a/b", "1/2/3", "2"}) {
    EXPECT_THROW(parse_shard(bad), UsageError) << bad;
  }
}

TEST(CellCommand, NamesEverythingTheCellMeasures) {
  Cell c = parse(kBase).cells.front();
  const auto argv = cell_command(c, "/bin/kmbench", "/tmp/out.json");
  const std::vector<std::string> expect = {"/bin/kmbench", "workload", "nic", "--backend", "system"};
  EXPECT_TRUE(std::equal(expect.begin(), expect.end(), argv.begin()));
  EXPECT_NE(std::find(argv.begin(), argv.end(), "packets=100"), argv.end());
  EXPECT_EQ(argv.back(), "/tmp/out.json");
  EXPECT_EQ(cell_from_json(cell_json(c)).id, c.id);
}

TEST(MatrixFile, ReplayOptionsAndBackendParams) {
  const Matrix m = parse("backends = [\"system\"]\nrepetitions = 1\n[[workload]]\nname = \"nic\"\n"
                         "params = { seed = 7 }\nreplay = { drain = true, touch = \"pages\", latency = false }\n"
                         "backend_params = { tcache = \"off\" }\n");
  const auto argv = cell_command(m.cells.front(), "k", "o.json");
  auto after = [&](const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    return it == argv.end() || it + 1 == argv.end() ? std::string("<absent>") : *(it + 1);
  };
  EXPECT_EQ(after("--seed"), "7");
  EXPECT_EQ(after("--touch"), "pages");
  EXPECT_EQ(after("--backend-param"), "tcache=off");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "--drain"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "--no-latency"), argv.end());
  const std::string e = error_of("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\n"
                                 "replay = { touch = \"all\" }\n");
  EXPECT_NE(e.find("m.toml:4:"), std::string::npos) << e;
  EXPECT_NE(error_of("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\nreplay = { fast = 1 }\n")
                .find("unknown key 'fast'"),
            std::string::npos);
}

// A list in params or backend_params is a sweep: one group of cells per
// combination of the listed values, each labelled with its point.
TEST(MatrixFile, SweepsExpandEveryCombination) {
  Catalog catalog = test_catalog();
  catalog.backend_params["zones"] = find_backend("zones")->params;
  const Matrix m = parse_matrix("backends = [\"zones\"]\nthreads = [1, 2]\nrepetitions = 2\n[[workload]]\n"
                                "name = \"nic\"\nparams = { packets = [100, 200] }\n"
                                "backend_params = { magazine = [8, 16, 32], cache = \"on\" }\n",
                                "m.toml", catalog);
  EXPECT_EQ(m.cells.size(), 2u * 3 * 2 * 2);  // packets x magazine x threads x repetitions
  std::set<std::string> labels, groups;
  for (const Cell& c : m.cells) {
    labels.insert(c.label);
    groups.insert(c.group);
    EXPECT_EQ(c.base_label, "nic");
    ASSERT_EQ(c.sweep.size(), 2u);
    EXPECT_EQ(c.sweep[0].first, "packets");
    EXPECT_EQ(c.sweep[1].first, "magazine");
    EXPECT_EQ(c.label, "nic@packets=" + c.sweep[0].second + ",magazine=" + c.sweep[1].second);
    EXPECT_EQ(c.params, (std::vector<std::pair<std::string, std::string>>{{"packets", c.sweep[0].second}}));
    EXPECT_EQ(c.backend_params, (std::vector<std::pair<std::string, std::string>>{
                                    {"cache", "on"}, {"magazine", c.sweep[1].second}}));
    EXPECT_EQ(cell_from_json(cell_json(c)).sweep, c.sweep);
    EXPECT_EQ(cell_from_json(cell_json(c)).base_label, "nic");
  }
  EXPECT_EQ(labels.size(), 6u);
  EXPECT_EQ(groups.size(), 12u);
  EXPECT_TRUE(labels.count("nic@packets=200,magazine=32"));
  // No list, no sweep: the label stays the entry's.
  const Matrix plain = parse_matrix("backends = [\"zones\"]\n[[workload]]\nname = \"nic\"\n"
                                    "backend_params = { magazine = 16 }\n", "m.toml", catalog);
  EXPECT_EQ(plain.cells.front().label, "nic");
  EXPECT_TRUE(plain.cells.front().sweep.empty());
}

TEST(MatrixFile, SweepValuesAreCheckedAgainstEveryBackendsTable) {
  Catalog catalog = test_catalog();
  catalog.backend_params["zones"] = find_backend("zones")->params;
  catalog.backend_params["slab"] = find_backend("slab")->params;
  auto error = [&](const std::string& text) {
    try {
      parse_matrix(text, "m.toml", catalog);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string head = "backends = [\"zones\"]\n[[workload]]\nname = \"nic\"\n";
  EXPECT_EQ(error(head + "backend_params = { magazine = [8, 2048] }\n"),
            "m.toml:4: backend_params for zones: magazine=2048 is outside 1..1024 (kmbench list --params zones)");
  EXPECT_EQ(error(head + "backend_params = { cache = [\"on\",\n  \"maybe\"] }\n"),
            "m.toml:5: backend_params for zones: cache=maybe is not auto, on or off (kmbench list --params zones)");
  EXPECT_NE(error(head + "backend_params = { magazine = [] }\n").find("m.toml:4: backend_params 'magazine' is an "
                                                                        "empty list"),
            std::string::npos);
  EXPECT_NE(error(head + "backend_params = { magazine = [8, 8] }\n").find("lists 8 twice"), std::string::npos);
  EXPECT_NE(error(head + "params = { packets = [[1]] }\n").find("must be a string, number or boolean"),
            std::string::npos);
  EXPECT_NE(error("backends = [\"zones\", \"slab\"]\n[[workload]]\nname = \"nic\"\n"
                  "backend_params = { magazine = 16 }\n")
                .find("m.toml:4: backend_params for slab: unknown parameter 'magazine' (known: debug, "),
            std::string::npos);
}

// One table checks a replay option wherever it is given: the matrix's message
// for a mistake is the command line's, with the file and line in front.
TEST(MatrixFile, ReplayOptionMistakesReadAsOnTheCommandLine) {
  struct Case {
    const char* toml;
    const char* flag;
    const char* value;
  };
  for (const Case& c :
       {Case{"replay = { touch = \"all\" }", "--touch", "all"}, Case{"replay = { warmup = 101 }", "--warmup", "101"},
        Case{"replay = { iommu = 7 }", "--iommu", "7"}, Case{"replay = { memory = \"4q\" }", "--memory", "4q"},
        Case{"replay = { pressure = \"cap=garbage\" }", "--pressure", "cap=garbage"},
        Case{"mode = \"slow\"", "--mode", "slow"}, Case{"placements = [\"far\"]", "--placement", "far"}}) {
    const replay::OptionSpec& spec = *replay::option_by_flag(c.flag);
    std::string cli;
    try {
      replay::Options o;
      replay::set_option(o, spec, c.value, spec.flag);
    } catch (const UsageError& e) {
      cli = e.what();
    }
    ASSERT_FALSE(cli.empty()) << c.flag << " " << c.value;
    const std::string e = error_of(std::string("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\n") + c.toml + "\n");
    EXPECT_NE(e.find("m.toml:4:"), std::string::npos) << e;
    // The same words after the option's spelling: "'all' is not none, first or pages".
    const std::string words = cli.substr(cli.find(' '));
    EXPECT_NE(e.find(words), std::string::npos) << e << " | " << cli;
  }
}

TEST(MatrixFile, EveryReplayOptionThatIsNotAnAxisStandsInAnEntry) {
  const Matrix m = parse("backends = [\"system\"]\nrepetitions = 1\n[[workload]]\nname = \"churn\"\n"
                         "replay = { memory = \"2g\", iommu = 32, sample_ms = 5, warmup = 0, speed = 2.5, node = 0 }\n");
  const auto argv = cell_command(m.cells.front(), "k", "o.json");
  auto after = [&](const std::string& flag) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    return it == argv.end() || it + 1 == argv.end() ? std::string("<absent>") : *(it + 1);
  };
  EXPECT_EQ(after("--memory"), std::to_string(2ull << 30));
  EXPECT_EQ(after("--iommu"), "32");
  EXPECT_EQ(after("--sample-ms"), "5");
  EXPECT_EQ(after("--warmup"), "0");
  EXPECT_EQ(after("--speed"), "2.5");
  EXPECT_EQ(after("--node"), "0");
  // Axes are set by the matrix's own keys, not in replay = { }.
  EXPECT_NE(error_of("backends = [\"system\"]\n[[workload]]\nname = \"nic\"\nreplay = { threads = 2 }\n")
                .find("unknown key 'threads'"),
            std::string::npos);
}

TEST(OptionTable, EveryOptionSetsWhatItShowsAndNamesRoundTrip) {
  const replay::Options defaults;
  for (const replay::OptionSpec& spec : replay::option_table()) {
    SCOPED_TRACE(std::string(spec.key));
    ASSERT_NE(spec.set, nullptr);
    EXPECT_EQ(replay::option_by_key(spec.key), &spec);
    EXPECT_EQ(replay::option_by_flag(spec.flag), &spec);
    if (spec.get != nullptr) {
      // The default shown in --help is a value the option accepts, and setting it changes nothing.
      replay::Options o;
      replay::set_option(o, spec, spec.get(defaults), spec.flag);
      EXPECT_EQ(spec.get(o), spec.get(defaults));
    }
    for (std::string_view choice : spec.choices) {
      replay::Options o;
      replay::set_option(o, spec, choice, spec.flag);
      EXPECT_EQ(spec.get(o), choice);
    }
  }
  replay::Options o;
  replay::set_option(o, *replay::option_by_key("memory"), "3m", "--memory");
  EXPECT_EQ(o.node_bytes, 3u << 20);
  replay::set_option(o, *replay::option_by_key("latency"), "false", "--no-latency");
  EXPECT_FALSE(o.latency);
  replay::set_option(o, *replay::option_by_key("iommu"), "0", "--iommu");
  EXPECT_FALSE(o.iommu);
}

}  // namespace
}  // namespace kmbench::matrix
