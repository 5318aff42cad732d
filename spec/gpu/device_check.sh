#!/usr/bin/env bash
# One-shot check of the CUDA backend on a GPU machine, sized for a session with 15 minutes of
# device time (docs/cuda.md, "Checking on a GPU"). Run from the repository root:
#
#   bash spec/gpu/device_check.sh                  results in $OUT (default ./out)
#
# Every step runs under its own timeout, writes $OUT/<step>.log and appends one line to
# $OUT/summary.txt as soon as it ends (so a run cut short still returns what it did):
#   <step> PASS|FAIL|SKIP|TIMEOUT <seconds>s <detail>
# The whole run stays under FSVC_CHECK_BUDGET seconds (default 530, under 9 minutes): a step gets
# at most the time left, and none once it is gone (SKIP "no time left").
#
# Steps: env (machine, driver, toolkit), deps (what the binary or the build needs: fails fast
# with a one-line message), build (only without a usable build), gpu (is a device usable?),
# ctest_device (the C tests test_device*), cuda_spec (busted spec/cuda_spec.lua), device_specs
# (every other spec/*_spec.lua with cuda cases), parity_cuda (spec/parity.lua --device cuda),
# bench_cuda (spec/bench/bench_train.lua -d cuda, full size), memcheck (compute-sanitizer
# memcheck on a subset of spec/cuda_spec.lua; memcheck_more: the other float32 cases; memcheck_full:
# every spec with cuda cases, with the time left), bench_cuda_tf32 (the same with TF32), host_profile
# (spec/bench/host_profile.lua: a conversion's host time by C function), profile (ncu:
# kernel time by name for one eager step of each training row), bench_cpu_quick (reference).
# Without a GPU each GPU step reports SKIP, so the logic can be checked anywhere:
#   OUT=/tmp/x FSVC_CHECK_BUILD=build bash spec/gpu/device_check.sh
#
# The build: FSVC_CHECK_BUILD (default build-gpu). When it holds an fsvc binary it is used as it
# is: build-gpu/ carried from the CPU machine by spec/gpu/prepare_carry.sh holds the binaries and
# deps.tar.gz (the shared libraries, busted, the fixtures) for a machine without our packages.
# Otherwise it is configured with -DFSVC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 and built with -j16.
# FSVC_CHECK_ONLY="step ..." runs only those steps (env and gpu always run); FSVC_CHECK_SKIP="step
# ..." leaves those out (a second call that reruns what failed).
# Exit status: 0 when no step failed or timed out.
set -u

REPO=$(pwd)
if [ ! -f "$REPO/spec/gpu/device_check.sh" ] || [ ! -f "$REPO/CMakeLists.txt" ]; then
  echo "device_check: run me from the repository root (bash spec/gpu/device_check.sh)" >&2
  exit 2
fi
OUT=${OUT:-$REPO/out}
mkdir -p "$OUT" || { echo "device_check: cannot create OUT=$OUT" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
BUDGET=${FSVC_CHECK_BUDGET:-450}
START=$(date +%s)
BUILD=${FSVC_CHECK_BUILD:-build-gpu}
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
JOBS=${FSVC_CHECK_JOBS:-16}
FAILED=0
GPU=0
export FSVC_HOME=$REPO # the Lua library comes from this tree whatever path the binary was built at

note() { printf '%s\n' "$*" >>"$SUMMARY"; }
elapsed() { echo $(($(date +%s) - START)); }

# the detail of a step: the last line that says how it went, else the last non-empty line
detail_of() {
  local log=$1 d
  d=$(grep -E '^SKIP|^summary:|successes /|passed, [0-9]+ failed|tests passed|tests failed|^device_check:|ERROR SUMMARY' "$log" 2>/dev/null | tail -n 1)
  [ -n "$d" ] || d=$(grep -v '^[[:space:]]*$' "$log" 2>/dev/null | tail -n 1)
  printf '%s' "$d" | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200
}

# run_step NAME TIMEOUT_S COMMAND: COMMAND (a bash string) under timeout, logged to $OUT/NAME.log
run_step() {
  local name=$1 limit=$2 cmd=$3 left log rc status t0 secs
  log=$OUT/$name.log
  if [[ " ${FSVC_CHECK_SKIP:-} " == *" $name "* ]] ||
     { [ -n "${FSVC_CHECK_ONLY:-}" ] && [[ " env gpu $FSVC_CHECK_ONLY " != *" $name "* ]]; }; then
    echo "SKIP: not asked for (FSVC_CHECK_ONLY / FSVC_CHECK_SKIP)" >"$log"
    note "$(printf '%-17s %-7s %4ss  %s' "$name" SKIP 0 "not asked for (FSVC_CHECK_ONLY / FSVC_CHECK_SKIP)")"
    return 0
  fi
  left=$((BUDGET - $(elapsed) - 5))
  if [ "$left" -lt 10 ]; then
    echo "device_check: no time left (budget ${BUDGET}s)" >"$log"
    note "$(printf '%-17s %-7s %4ss  %s' "$name" SKIP 0 "no time left (budget ${BUDGET}s)")"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t0=$(date +%s)
  { echo "\$ $cmd"; echo "# timeout ${limit}s, started at +$(elapsed)s"; } >"$log"
  timeout -k 5 "$limit" bash -c "$cmd" >>"$log" 2>&1 </dev/null
  rc=$?
  secs=$(($(date +%s) - t0))
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status=TIMEOUT; FAILED=1
    echo "device_check: timed out after ${limit}s" >>"$log"
  elif [ "$rc" -eq 0 ] && grep -q '^SKIP' "$log"; then
    status=SKIP
  elif [ "$rc" -eq 0 ]; then
    status=PASS
  else
    status=FAIL; FAILED=1
    echo "device_check: exit status $rc" >>"$log"
  fi
  note "$(printf '%-17s %-7s %4ss  %s' "$name" "$status" "$secs" "$(detail_of "$log")")"
  return $rc
}

# a step that is not run, with the reason
skip_step() {
  echo "SKIP: $2" >"$OUT/$1.log"
  note "$(printf '%-17s %-7s %4ss  %s' "$1" SKIP 0 "$2")"
}

finish() {
  note "$(printf '%-17s %-7s %4ss  %s' total "$([ "$FAILED" -eq 0 ] && echo PASS || echo FAIL)" "$(elapsed)" \
    "budget ${BUDGET}s; logs in $OUT")"
  cat "$SUMMARY"
  exit "$FAILED"
}

# ---- env: what this machine is ------------------------------------------------------------------
run_step env 20 '
  echo "date: $(date -u)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"; free -g 2>/dev/null | head -2
  [ -f /etc/os-release ] && grep -E "^(PRETTY_NAME)=" /etc/os-release
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
  else echo "nvidia-smi: not found"; fi
  if [ -x "'"$CUDA_HOME"'/bin/nvcc" ]; then "'"$CUDA_HOME"'/bin/nvcc" --version | tail -n 2; else echo "nvcc: not found at '"$CUDA_HOME"'/bin"; fi
  for t in cmake gcc make pkg-config busted lua5.4; do printf "%-18s %s\n" "$t" "$(command -v $t || echo -)"; done
  printf "%-18s %s\n" "compute-sanitizer" "$([ -x "'"$CUDA_HOME"'/bin/compute-sanitizer" ] && echo "'"$CUDA_HOME"'/bin/compute-sanitizer" || echo -)"
  [ -f "'"$BUILD"'/BUILD_INFO" ] && { echo "--- '"$BUILD"'/BUILD_INFO"; cat "'"$BUILD"'/BUILD_INFO"; }
  echo "summary: $(nproc) cpus, $(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 || echo "no nvidia-smi")"
'

# ---- deps: a usable binary, or what the build needs -----------------------------------------------
# deps.tar.gz (prepare_carry.sh): lib/ (shared libraries), lua/ + clib/ + busted (the test
# runner), fixtures/; used only for what this machine lacks
DEPS=""
if [ -f "$BUILD/deps.tar.gz" ]; then
  DEPS=/tmp/fsvc-check-deps
  rm -rf "$DEPS" && mkdir -p "$DEPS" && tar -xzf "$BUILD/deps.tar.gz" -C "$DEPS" 2>"$OUT/deps_unpack.log" || DEPS=""
fi
FSVC=$BUILD/fsvc
if [ -x "$FSVC" ] && [ -n "$DEPS" ] && ldd "$FSVC" 2>/dev/null | grep -q "not found"; then
  # only what this machine lacks: a carried copy of a library the system has (libstdc++, say)
  # would shadow the system's newer one for everything loaded later (cuDNN, cuBLAS)
  for lib in "$DEPS"/lib/*; do
    ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$(basename "$lib") " && rm -f "$lib"
  done
  echo "carried libraries used: $(ls "$DEPS/lib" | tr '\n' ' ')" >>"$OUT/deps_unpack.log"
  export LD_LIBRARY_PATH=$DEPS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
# cuDNN loads its sub-libraries (libcudnn_cnn, engines, ...) by name: put the folder that holds
# libcudnn.so.9 on the loader's path when the cache does not know it (e.g. pip's nvidia-cudnn wheel)
if ! ldconfig -p 2>/dev/null | grep -q 'libcudnn.so.9 '; then
  for d in "$CUDA_HOME/lib64" /usr/local/cuda/lib64 /opt/*/.venv/lib/python3*/site-packages/nvidia/cudnn/lib \
           /usr/local/lib/python3*/dist-packages/nvidia/cudnn/lib; do
    if [ -e "$d/libcudnn.so.9" ]; then export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; break; fi
  done
fi
BUSTED=${FSVC_CHECK_BUSTED-$(command -v busted || true)} # set it empty to use the carried one
if [ -z "$BUSTED" ] && [ -n "$DEPS" ] && [ -f "$DEPS/busted" ]; then
  BUSTED=$DEPS/busted
  export LUA_PATH="$DEPS/lua/?.lua;$DEPS/lua/?/init.lua;;" LUA_CPATH="$DEPS/clib/?.so;;"
fi
FIXTURES=""
for d in "$REPO/../shared/reference/fixtures" "$REPO/shared/reference/fixtures" "$DEPS/fixtures"; do
  if [ -n "$d" ] && [ -f "$d/dcc.safetensors" ]; then FIXTURES=$(cd "$d" && pwd); break; fi
done

NEED_BUILD=0
[ -x "$FSVC" ] || NEED_BUILD=1
deps_check() {
  local missing=()
  if [ "$NEED_BUILD" -eq 1 ]; then
    for t in cmake make gcc g++ pkg-config; do command -v "$t" >/dev/null || missing+=("$t"); done
    [ -x "$CUDA_HOME/bin/nvcc" ] || missing+=("nvcc ($CUDA_HOME/bin/nvcc)")
    if command -v pkg-config >/dev/null; then
      for p in lua5.4 sndfile soxr; do pkg-config --exists "$p" || missing+=("pkg-config:$p"); done
    fi
    for h in /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h /usr/include/kissfft/kiss_fft.h \
             /usr/include/readline/readline.h /usr/include/zlib.h; do
      [ -f "$h" ] || missing+=("$h")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "device_check: cannot build: missing ${missing[*]} (apt-get install build-essential cmake" \
        "pkg-config liblua5.4-dev libopenblas-dev libreadline-dev libsndfile1-dev libsoxr-dev" \
        "libkissfft-dev zlib1g-dev; or carry build-gpu/ made by spec/gpu/prepare_carry.sh)"
      return 1
    fi
    echo "build needed: $BUILD has no fsvc; every build tool is present"
  else
    local nf
    nf=$(ldd "$FSVC" 2>/dev/null | awk '/not found/{print $1}' | tr '\n' ' ')
    if [ -n "$nf" ]; then
      echo "device_check: $FSVC cannot run: missing shared libraries $nf(apt-get install liblua5.4-0" \
        "libopenblas0 libsndfile1 libsoxr0 libkissfft-float131 libreadline8, or carry build-gpu/ with" \
        "deps.tar.gz from spec/gpu/prepare_carry.sh)"
      return 1
    fi
    "$FSVC" -e 'print("fsvc runs: lua " .. _VERSION .. ", cuda built " .. tostring(fsvc.cuda.is_built()))' || return 1
  fi
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  [ -n "$BUSTED" ] || echo "busted not found (apt-get install lua-busted): the spec steps will fail"
  echo "summary: $([ "$NEED_BUILD" -eq 1 ] && echo "build tools present" || echo "$FSVC runs")," \
    "busted ${BUSTED:-MISSING}, fixtures ${FIXTURES:-none}${DEPS:+, deps from $BUILD/deps.tar.gz}"
}
{ deps_check >"$OUT/deps.log" 2>&1; } ; deps_rc=$?
note "$(printf '%-17s %-7s %4ss  %s' deps "$([ $deps_rc -eq 0 ] && echo PASS || echo FAIL)" 0 "$(detail_of "$OUT/deps.log")")"
if [ $deps_rc -ne 0 ]; then
  FAILED=1
  finish
fi

# ---- build ---------------------------------------------------------------------------------------------
if [ "$NEED_BUILD" -eq 1 ]; then
  run_step build 330 "cmake -S '$REPO' -B '$BUILD' -DCMAKE_BUILD_TYPE=Release -DFSVC_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER='$CUDA_HOME/bin/nvcc' && \
    cmake --build '$BUILD' -j$JOBS && echo 'summary: built $BUILD'"
  if [ ! -x "$FSVC" ]; then
    note "device_check: no fsvc binary after the build: the remaining steps cannot run"
    FAILED=1
    finish
  fi
else
  skip_step build "using $BUILD as it is"
fi

# ---- gpu: is a device usable? ---------------------------------------------------------------------------
run_step gpu 30 "'$FSVC' -e '
  print(\"cuda built\", fsvc.cuda.is_built(), \"available\", fsvc.cuda.is_available(), \"devices\", fsvc.cuda.device_count())
  if fsvc.cuda.is_available() then
    print(\"cudnn\", fsvc.cuda.cudnn_is_available(), fsvc.cuda.cudnn_version(), fsvc.cuda.cudnn_unavailable_reason())
    print(\"summary: \" .. fsvc.cuda.get_device_name(0) .. \", cuDNN \" .. fsvc.cuda.cudnn_version())
  else print(\"SKIP: no CUDA device (\" .. fsvc.cuda.unavailable_reason() .. \")\") end'"
grep -q '^summary:' "$OUT/gpu.log" && GPU=1

# ---- the C tests -----------------------------------------------------------------------------------------
if [ -f "$BUILD/CTestTestfile.cmake" ] && grep -q "$BUILD" "$BUILD/CTestTestfile.cmake"; then
  run_step ctest_device 60 "cd '$BUILD' && ctest -R device --output-on-failure --timeout 50"
else # a carried build: its CTest files name the other machine's paths; run the tests directly
  run_step ctest_device 60 "rc=0; n=0; for t in '$BUILD'/test_device*; do [ -x \"\$t\" ] || continue; n=\$((n+1));
    echo \"== \$t\"; timeout 50 \"\$t\" || rc=1; done; [ \$n -gt 0 ] || { echo 'no test_device* binaries in $BUILD'; rc=1; };
    [ \$rc -eq 0 ] && echo \"\$n tests passed, 0 tests failed\"; exit \$rc"
fi

# ---- the Lua specs ---------------------------------------------------------------------------------------
# spec/cuda_spec.lua first (op parity and gradients), then the fixtures and the benchmark, then
# compute-sanitizer, then the other specs with cuda cases, one busted process per file (a crash or
# a sticky CUDA error in one file does not take the others' results with it)
BUSTED_RUN="'$FSVC' '$BUSTED' -o plainTerminal"
if [ -n "$BUSTED" ]; then
  run_step cuda_spec 150 "$BUSTED_RUN spec/cuda_spec.lua"
else
  skip_step cuda_spec "busted not found"
  FAILED=1
fi

# ---- parity and the benchmark ----------------------------------------------------------------------------
if [ -n "$FIXTURES" ]; then
  run_step parity_cuda 75 "'$FSVC' spec/parity.lua '$FIXTURES' --device cuda"
else
  skip_step parity_cuda "no reference fixtures (../shared/reference/fixtures or deps.tar.gz)"
fi
run_step bench_cuda 180 "'$FSVC' spec/bench/bench_train.lua -d cuda --graph"

# ---- the other specs with cuda cases, a process per file ---------------------------------------------
others=$(grep -l 'cuda.is_available' spec/*_spec.lua | grep -v '^spec/cuda_spec.lua$' | tr '\n' ' ')
if [ -z "$BUSTED" ]; then
  skip_step device_specs "busted not found"
elif [ -n "$others" ]; then
  # shellcheck disable=SC2086
  run_step device_specs 150 "bash spec/gpu/run_spec_files.sh '$FSVC' '$BUSTED' $others"
else
  skip_step device_specs "no other spec has cuda cases"
fi

# ---- compute-sanitizer: a subset of the cuda spec (every launch is checked, about 10-100x slower) ----
SANITIZER=$CUDA_HOME/bin/compute-sanitizer
if [ "$GPU" -eq 0 ]; then
  skip_step memcheck "no CUDA device"
elif [ ! -x "$SANITIZER" ]; then
  skip_step memcheck "no $SANITIZER"
elif [ -z "$BUSTED" ]; then
  skip_step memcheck "busted not found"
else
  # FSVC_CUDA_EXACT_ALLOC=1: blocks of exactly the size asked for (gpu/allocator.c), so that an
  # access past a tensor's end is past cudaMalloc's bounds too, where memcheck sees it
  memcheck_cmd() { # step name, limit, busted filters and files
    local name=$1 limit=$2
    shift 2
    run_step "$name" "$limit" "FSVC_CUDA_EXACT_ALLOC=1 FSVC_BIN='$FSVC' '$SANITIZER' --tool memcheck --leak-check no \
      --error-exitcode 3 $BUSTED_RUN $*; \
      rc=\$?; [ \$rc -eq 3 ] && echo 'device_check: memcheck found errors (see above)'; \
      if [ \$rc -ne 0 ] && grep -q 'Device not supported' '$OUT/$name.log'; then \
        echo 'device_check: compute-sanitizer cannot use the GPU on this runtime (seen on gVisor machines,' \
          'kernel 4.4.0); memcheck needs a Firecracker machine (uname -r *-fc-*): nothing was checked'; fi; \
      exit \$rc"
  }
  # the runtime, nn and reduce float32 cases and cuDNN's; then, with the time left, every other
  # float32 case of the op-parity table, graphs, topk and the index ops (not the graph test that
  # makes a capture fail on purpose: memcheck counts the CUDA API errors it provokes)
  memcheck_cmd memcheck 120 "--filter='cuda runtime' --filter='%(nn%) float32' --filter='%(reduce%) float32'" \
    "--filter='backend%scudnn%sfloat32' spec/cuda_spec.lua spec/cuda_conv_spec.lua"
  memcheck_cmd memcheck_more 240 "--filter='%(elementwise%) float32' --filter='%(shape%) float32'" \
    "--filter='%(dsp%) float32' --filter='%(autograd%) float32' --filter='cuda graphs'" \
    "--filter='cuda topk' --filter='16%-bit index' --filter='cuda indexing'" \
    "--filter-out='waits%sfor%sthe%sdevice' spec/cuda_spec.lua"
  # then, with the time left, every case of every spec with cuda cases (on an H200 the two subsets
  # above took 2 s and 6 s under memcheck: the whole run should fit in a few minutes)
  # shellcheck disable=SC2086
  memcheck_cmd memcheck_full 300 "--filter-out='waits%sfor%sthe%sdevice' spec/cuda_spec.lua $others"
fi

# ---- the benchmark with TF32 (PyTorch's default for cuDNN convolutions, which its anchors used) ----
run_step bench_cuda_tf32 120 "'$FSVC' spec/bench/bench_train.lua -d cuda --tf32 --graph"

# ---- where a conversion's host time goes (a debug hook on C calls) -----------------------------------
run_step host_profile 60 "'$FSVC' spec/bench/host_profile.lua -d cuda"

# ---- where a step's device time goes: Nsight Compute, one eager step of each row --------------------
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu "$CUDA_HOME"/bin/ncu 2>/dev/null | head -n 1)
if [ "$GPU" -eq 0 ]; then
  skip_step profile "no CUDA device"
elif [ -z "$NCU" ]; then
  skip_step profile "no ncu (Nsight Compute)"
else
  run_step profile 200 "for row in decoder discriminator pitch convert stream; do \
      '$NCU' --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv \
        --print-units base --log-file '$OUT/ncu_'\$row.csv '$FSVC' spec/bench/bench_train.lua -d cuda \
        --only \$row --reps 1 --warmup 1 --profile >/dev/null 2>&1 || echo \"ncu failed for \$row\"; \
      echo \"== \$row\"; '$FSVC' spec/gpu/ncu_summary.lua '$OUT/ncu_'\$row.csv 25; done; \
    echo 'summary: kernel time by name for one eager step of each row (ncu)'"
fi

# ---- for reference, only when asked (FSVC_CHECK_CPU_BENCH=1) ----------------------------------------------
if [ "${FSVC_CHECK_CPU_BENCH:-0}" = 1 ]; then
  run_step bench_cpu_quick 60 "'$FSVC' spec/bench/bench_train.lua --quick"
fi

finish
