#!/usr/bin/env bash
# Draws the reports shown in the README and docs/report.md, and screenshots them in
# headless Chromium: the seed comparison, the streaming scenario, and a before/after
# pair (the streaming scenario, then the same with the mock decoding 20 % faster).
# Everything runs on the embedded mock; the PNGs go to docs/img/.
#   scripts/report-shots.sh            # needs /usr/bin/chromium (apt-get install chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/llmload
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p docs/img

$bin run scenarios/seed-comparison.toml --headless --json "$out/seed.json" >/dev/null
$bin run scenarios/streaming.toml --headless --json "$out/before.json" --requests-out "$out/before.jsonl" >/dev/null
grep -q '^inter_token_ms = 20$' scenarios/streaming.toml || { echo "scenarios/streaming.toml no longer says inter_token_ms = 20: update this script" >&2; exit 1; }
sed 's/^inter_token_ms = 20$/inter_token_ms = 16/' scenarios/streaming.toml >"$out/streaming-faster.toml"
$bin run "$out/streaming-faster.toml" --headless --json "$out/after.json" >/dev/null

$bin report "$out/seed.json" -o "$out/seed.html"
$bin report "$out/before.json" --requests "$out/before.jsonl" -o "$out/streaming.html"
$bin report "$out/before.json" "$out/after.json" --fail-on itl_p50_ms:+5% -o "$out/compare.html"

shot() { # page, png, height
  chromium --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
    --host-resolver-rules="MAP * ~NOTFOUND" --hide-scrollbars --user-data-dir="$out/profile" \
    --window-size=1000,"$3" --screenshot="$2" "file://$1" 2>/dev/null
}
shot "$out/seed.html" docs/img/report-seed.png 2300
shot "$out/streaming.html" docs/img/report-streaming.png 3900
shot "$out/compare.html" docs/img/report-compare.png 2500
ls -l docs/img/report-*.png
