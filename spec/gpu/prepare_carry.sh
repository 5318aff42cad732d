#!/usr/bin/env bash
# Prepares build-gpu/ on the CPU machine for spec/gpu/device_check.sh on a GPU machine that may
# lack our packages and has no network (docs/cuda.md, "Checking on a GPU"):
#
#   bash spec/gpu/prepare_carry.sh        then run the check with carry ["build-gpu"]
#
# Builds the CUDA backend for sm_90 (H100/H200) in build-gpu-full/ (Release, FSVC_CUDA=ON), then
# fills build-gpu/ with only what the check runs: fsvc, the test_device* C tests, BUILD_INFO, and
# deps.tar.gz (the shared libraries fsvc links besides glibc, busted and its Lua modules, the
# reference fixtures). device_check.sh unpacks deps.tar.gz and uses each part only where the
# machine lacks it. The folder must stay under the 64 MiB a carry may hold; this script fails
# when it does not. JOBS (default: nproc) sets the build's parallelism.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
FULL=$REPO/build-gpu-full
SLIM=$REPO/build-gpu
JOBS=${JOBS:-$(nproc)}
LIMIT_MIB=60

cmake -S "$REPO" -B "$FULL" -DCMAKE_BUILD_TYPE=Release -DFSVC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
tests=$(cd "$REPO/spec/c" && ls test_device*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$FULL" -j"$JOBS" --target fsvc $tests

rm -rf "$SLIM"
mkdir -p "$SLIM"
cp "$FULL/fsvc" "$SLIM/"
for t in $tests; do cp "$FULL/$t" "$SLIM/"; done
{
  echo "built: $(date -u) on $(hostname) from $REPO"
  echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)" \
    "($(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) changed files in the tree then)"
  echo "cmake: -DCMAKE_BUILD_TYPE=Release -DFSVC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90"
  "$FULL/fsvc" -e 'print("fsvc: cuda built " .. tostring(fsvc.cuda.is_built()))'
} >"$SLIM/BUILD_INFO"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/lua" "$stage/clib"
# shared libraries besides glibc's own (present on any Debian-like system)
ldd "$FULL/fsvc" | awk '/=> \//{print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
# busted and its modules (pure Lua, plus lfs / system / term C modules built for Lua 5.4)
if command -v busted >/dev/null; then
  cp -L "$(command -v busted)" "$stage/busted"
  for d in busted busted.lua cliargs cliargs.lua dkjson.lua luassert mediator.lua pl say system term; do
    [ -e "/usr/share/lua/5.4/$d" ] && cp -rL "/usr/share/lua/5.4/$d" "$stage/lua/"
  done
  cp -rL /usr/lib/x86_64-linux-gnu/lua/5.4/. "$stage/clib/"
fi
if [ -d "$REPO/../shared/reference/fixtures" ]; then
  cp -rL "$REPO/../shared/reference/fixtures" "$stage/fixtures"
fi
tar -czf "$SLIM/deps.tar.gz" -C "$stage" .

size_kib=$(du -sk "$SLIM" | cut -f1)
ls -la "$SLIM"
echo "build-gpu: $((size_kib / 1024)) MiB (limit ${LIMIT_MIB} MiB)"
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
  echo "prepare_carry: build-gpu is over ${LIMIT_MIB} MiB: it cannot be carried" >&2
  exit 1
fi
