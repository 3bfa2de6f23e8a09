#!/usr/bin/env bash
# Side-by-side throughput: IntelMQ 3.5's own converters against
# `intelmq-bridge translate`, on the same generated input, in one run.
#
#   benches/compare/run.sh [N]        (N events, default 100000)
#
# Environment:
#   COMPARE_VENV  venv to create or reuse (default: $REPO/target/reference-venv,
#                 the reference check's, when it holds the pins below)
#   RUNS          bridge runs per pair, the best is kept (default 3)
#   BIG_MB        size of the large input for the peak-RSS run (default 1024; 0 skips it)
#   AMQP          the AMQP comparison (amqp.py) on the local RabbitMQ at
#                 127.0.0.1:5672: auto (default: when a broker listens there),
#                 1 (always), 0 (skip), only (nothing else)
#   AMQP_TIMEOUT  seconds each side of the AMQP comparison may take (default 600)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
N="${1:-100000}"
VENV="${COMPARE_VENV:-$REPO/target/reference-venv}"
DATA="$REPO/target/compare"
BRIDGE="$REPO/target/release/intelmq-bridge"
BIG_MB="${BIG_MB:-1024}"
AMQP="${AMQP:-auto}"

# The same pins as tests/reference/run.sh (intelmq 3.5.0 imports
# pkg_resources, which setuptools >= 82 no longer ships; pika is IntelMQ's
# AMQP pipeline).
PACKAGES=("intelmq==3.5.0" "setuptools==80.10.2" "pika==1.4.4")

venv_ok() {
  [ -x "$VENV/bin/python" ] || return 1
  local installed spec
  installed="$("$VENV/bin/python" -m pip freeze --all --disable-pip-version-check 2>/dev/null)" || return 1
  for spec in "${PACKAGES[@]}"; do
    grep -qix "${spec%%==*}==${spec#*==}" <<<"$installed" || return 1
  done
}

if ! venv_ok; then
  echo "compare venv: installing ${PACKAGES[*]} into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"
fi

(cd "$REPO" && cargo build --release --quiet)

mkdir -p "$DATA"
echo "generating $N events into $DATA"
python3 "$HERE/generate.py" "$N" "$DATA"

broker_listens() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if [ "$AMQP" = only ]; then
  BIG_MB=0
else
  PYTHONWARNINGS=ignore "$VENV/bin/python" "$HERE/compare.py" "$BRIDGE" "$DATA" 2>/dev/null
fi

if [ "$AMQP" != 0 ]; then
  echo
  if [ "$AMQP" != auto ] || broker_listens; then
    PYTHONWARNINGS=ignore "$VENV/bin/python" "$HERE/amqp.py" "$BRIDGE" "$DATA"
  else
    echo "AMQP comparison skipped: no RabbitMQ at 127.0.0.1:5672"
  fi
fi

if [ "$BIG_MB" -gt 0 ]; then
  big="$DATA/big.jsonl"
  : >"$big"
  while [ "$(stat -c %s "$big")" -lt $((BIG_MB * 1024 * 1024)) ]; do
    cat "$DATA/intelmq.jsonl" >>"$big"
  done
  events="$(wc -l <"$big")"
  echo
  echo "large input: $((($(stat -c %s "$big") + 524288) / 1048576)) MB, $events events, --from intelmq --to idea"
  report="$( { /usr/bin/time -v "$BRIDGE" translate --from intelmq --to idea --origin bench "$big" >/dev/null; } 2>&1 )"
  rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' <<<"$report")"
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' <<<"$report")"
  echo "  peak RSS ${rss} KB, wall ${wall}"
  rm -f "$big"
fi
