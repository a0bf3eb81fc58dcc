#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from real payloads: the OpenTelemetry Python
# SDK's exports (traces, metrics, logs; traces also as OTLP/JSON), Beyla's
# captured exports of three generations, Coral's own configuration files,
# and the pages and questions Coral produces (examples/seeds.rs). Then
# `scripts/fuzz.sh` grows the corpora and minimises them.
#
#   fuzz/seed.sh [PYTHON]     # PYTHON with opentelemetry-sdk and the OTLP/HTTP exporter
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-${CORAL_PYTHON:-$HOME/.cache/coral/venv-interop/bin/python}}"
C=fuzz/corpus
mkdir -p $C/{otlp_wire,otlp_json,gzip_body,otlp_exports,colony_page,config_yaml,ask_question}

sdk=$(mktemp -d)
trap 'rm -rf "$sdk"' EXIT
"$PY" fuzz/seeds/capture_sdk.py "$sdk"
for f in "$sdk"/traces-*.pb; do cp "$f" "$C/otlp_wire/sdk-$(basename "$f")"; done
for f in "$sdk"/*.pb; do cp "$f" "$C/otlp_exports/sdk-$(basename "$f")"; done
for f in "$sdk"/traces-*.json; do cp "$f" "$C/otlp_json/sdk-$(basename "$f")"; done
# Bodies as an SDK sends them with `compression: gzip`.
for f in "$sdk"/*.pb "$sdk"/*.json; do gzip -c "$f" >"$C/gzip_body/sdk-$(basename "$f").gz"; done

B=crates/coral-beyla/tests/fixtures/otlp
for v in v1 v2 v3; do
    cp "$B/$v.pb" "$C/otlp_exports/beyla-$v-metrics.pb"
done
for v in v2 v3; do
    cp "$B/$v.traces.pb" "$C/otlp_wire/beyla-$v-traces.pb"
    cp "$B/$v.traces.pb" "$C/otlp_exports/beyla-$v-traces.pb"
done
# Beyla's JSON fixtures are lists of exports: one OTLP/JSON body each.
python3 - "$B" "$C/otlp_json" <<'PY'
import json, sys, pathlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name in ["v1.json", "v2.json", "v3.json", "v2.traces.json", "v3.traces.json"]:
    for i, body in enumerate(json.loads((src / name).read_text())[:3]):
        (out / f"beyla-{name[:-5]}-{i}.json").write_text(json.dumps(body))
PY

for f in crates/coral-config/tests/fixtures/*.yaml deploy/systemd/*.yaml \
         crates/coral-beyla/tests/fixtures/config_gen/*.agent.yaml; do
    cp "$f" "$C/config_yaml/$(basename "$(dirname "$f")")-$(basename "$f")"
done

cargo run --quiet -p coral-fuzz --example seeds -- "$C"
for t in otlp_wire otlp_json gzip_body otlp_exports colony_page config_yaml ask_question; do
    echo "$t: $(ls "$C/$t" | wc -l) seeds"
done
