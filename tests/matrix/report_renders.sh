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

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --screenshot="$work/shot.png" --window-size=1280,2000 "file://$work/$html" > chromium.log 2>&1 \
  || { cat chromium.log; fail "chromium failed"; }
"$py" - "$work/shot.png" <<'PY'
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
echo "report: rendered and non-blank"
