#!/usr/bin/env bash
# The report: every chart as PNG and SVG, one offline HTML page, rendered by
# headless Chromium into a screenshot that must not be blank.
#   report_renders.sh KMBENCH TEST_SOURCE_DIR WORK_DIR
set -euo pipefail
km=$1; src=$2; work=$3
py=/usr/bin/python3
rm -rf "$work"; mkdir -p "$work"; cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$py" "$src/make_fixture_run.py" run
"$km" plot run -o out
for c in throughput_nic throughput_churn scaling latency_nic latency_churn footprint_nic footprint_churn numa dma tags; do
  [ -s "out/charts/$c.png" ] && [ -s "out/charts/$c.svg" ] || fail "chart $c"
done
html=out/report.html
grep -q "data:image/png;base64," "$html" || fail "charts not embedded"
if grep -Eq "(src|href)=['\"]https?:" "$html"; then fail "the report loads something from the network"; fi
grep -q "missing" "$html" || fail "failed cells not marked missing"
grep -q "VERDICT backends vs system" "$html" || fail "no verdict"
for section in Leaderboards "Internal fragmentation" "Call sites" "Verdicts: each backend against system"; do
  grep -q "<h2>$section" "$html" || fail "no $section section"
done
grep -q "Benjamini-Hochberg" "$html" || fail "the verdicts do not say how they were corrected"
grep -q "Fixture CPU" "$html" || fail "no machine"
grep -q "performance on CPUs 0; powersave on CPUs 1" "$html" || fail "no CPU governor"
grep -q "enabled madvise, defrag never" "$html" || fail "no transparent huge pages"
grep -q "inactive, control notsupported" "$html" || fail "no SMT"
grep -q "isolcpus=1" "$html" || fail "no kernel command line"
grep -q "not read: no cpu0/cache/index\* (fixture)" "$html" || fail "a fact not read does not say why"

# Rankings: cells ranked together differ in backend only (one ranking per
# thread count), and two sources compare pair by pair.
"$py" "$src/../../plots/rankings.py" run --pair nic:churn > rankings.txt || [ $? -eq 1 ] || fail "rankings.py"
grep -q "^== nic t1:" rankings.txt && grep -q "^== nic t2:" rankings.txt || fail "rankings mix thread counts"
grep -q "^== nic t2 vs churn t2:" rankings.txt || fail "no pair per thread count"
set +e; "$py" "$src/../../plots/rankings.py" run --pair nic:nope > /dev/null 2>&1; rc=$?; set -e
[ $rc -eq 2 ] || fail "an unknown source must exit 2, not $rc"

# A run cut short: some cells never ran (pending), besides the failed ones.
cp -r run cut
"$py" - cut <<'PY'
import json, os, sys
index_path = os.path.join(sys.argv[1], "index.json")
index = json.load(open(index_path))
for e in index["cells"]:
    if e["backend"] == "jemalloc" and e["repetition"] >= 3 or e["group"].startswith("churn.slab.t2"):
        os.remove(os.path.join(sys.argv[1], e["file"]))
        e["status"] = "pending"
index["summary"]["pending"] = sum(e["status"] == "pending" for e in index["cells"])
index["summary"]["ok"] = sum(e["status"] == "ok" for e in index["cells"])
json.dump(index, open(index_path, "w"), indent=1)
PY
"$km" plot cut -o cut_out
grep -q "not run (run interrupted or another shard)" cut_out/report.html || fail "pending cells not listed"

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
shoot() {  # shoot HTML PNG: headless Chromium renders the page into a screenshot
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --screenshot="$work/$2" --window-size=1280,2000 "file://$work/$1" > chromium.log 2>&1 \
    || { cat chromium.log; fail "chromium failed on $1"; }
}
shoot "$html" shot.png
shoot cut_out/report.html shot_cut.png
for shot in shot.png shot_cut.png; do
"$py" - "$work/$shot" <<'PY'
import sys
import matplotlib.image as mpimg
import numpy as np
img = mpimg.imread(sys.argv[1])[..., :3]
assert img.shape[0] >= 1500 and img.shape[1] >= 1200, img.shape
ink = (img.mean(axis=2) < 0.9).mean()
colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
print(f"screenshot {img.shape[1]}x{img.shape[0]}: {ink:.1%} ink, {colours} colours")
assert ink > 0.03, "the screenshot is blank"
assert colours > 50, "the screenshot has no charts"
PY
done
echo "report: rendered and non-blank"
