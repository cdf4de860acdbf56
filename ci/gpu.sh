#!/usr/bin/env bash
# GPU checks on a CUDA machine: the whole test suite, where the `xp` fixture now also yields the
# `cupy` and `torch_cuda` backends, then the GPU benchmark (issue 4's shapes and peers, with the
# float64 label check). Results go to $RESULTS_DIR (default: $OUT, else ./gpu-results); the
# benchmark's table is printed last.
#
# Knobs (environment): GPU_TESTS=0 skips the tests; GPU_TEST_WORKERS (default 4) runs them in
# that many pytest-xdist processes, one test file per process, where xdist is installed (the
# first GPU run compiles every CuPy kernel it meets, which parallel processes share out; 0 runs
# them in this process); GPU_BENCH=0 skips the benchmarks;
# GPU_BENCH_ARGS replaces the benchmark's options; GPU_BENCH_TIMEOUT (seconds, default 270) stops
# it early, keeping the shapes done so far (results are written after every shape);
# GPU_STREAM_TIMEOUT (60) bounds the streaming benchmark (issue 6) that runs before it, and
# GPU_TEST_TIMEOUT (200) the tests: all three together stay under 9 minutes, so one device call
# (at most 10) runs the whole script.
#
# On a machine without a package index, wheels in .whl/ (array-api-compat, array-api-strict,
# and the peers flash-kmeans and fast-pytorch-kmeans) are installed into .site/ first; see
# README.md, "GPU checks".
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS_DIR=${RESULTS_DIR:-${OUT:-gpu-results}}
mkdir -p "$RESULTS_DIR"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target .site .whl/*.whl || exit 1
    export PYTHONPATH=$PWD/.site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 - <<'PY'
import array_api_compat, numpy, torch
print("numpy", numpy.__version__, "| torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "| array-api-compat", array_api_compat.__version__)
try:
    import cupy
    print("cupy", cupy.__version__, "devices", cupy.cuda.runtime.getDeviceCount())
except Exception as exc:  # report, the tests will skip
    print("cupy unavailable:", exc)
PY
} 2>&1 | tee "$RESULTS_DIR/environment.txt"

status=0
if [[ "${GPU_TESTS:-1}" != 0 ]]; then
    workers=()
    if [[ "${GPU_TEST_WORKERS:-4}" != 0 ]] && python3 -c "import xdist" 2>/dev/null; then
        workers=(-n "${GPU_TEST_WORKERS:-4}" --dist loadfile)
    fi
    timeout "${GPU_TEST_TIMEOUT:-200}" python3 -m pytest tests -q -rs -p no:cacheprovider \
        ${workers[@]+"${workers[@]}"} --junitxml="$RESULTS_DIR/junit.xml" 2>&1 | tee "$RESULTS_DIR/pytest.log"
    status=${PIPESTATUS[0]}
    [[ $status == 124 ]] && echo "tests stopped after ${GPU_TEST_TIMEOUT:-200} s"

    echo
    echo "GPU backends in this run (passed / failed / skipped test cases):"
    [[ -f "$RESULTS_DIR/junit.xml" ]] || echo "  (no junit.xml: the tests did not finish)"
    for backend in cupy torch_cuda; do
        [[ -f "$RESULTS_DIR/junit.xml" ]] || break
        python3 - "$RESULTS_DIR/junit.xml" "$backend" <<'PY'
import re, sys, xml.etree.ElementTree as ET
path, backend = sys.argv[1], sys.argv[2]
in_case = re.compile(rf"\[(.*-)?{backend}(-.*)?\]$")
cases = [c for c in ET.parse(path).iter("testcase") if in_case.search(c.get("name", ""))]
failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
skipped = sum(1 for c in cases if c.find("skipped") is not None)
print(f"  {backend:<11} {len(cases) - failed - skipped:4d} / {failed:4d} / {skipped:4d}")
PY
    done
fi

if [[ "${GPU_BENCH:-1}" != 0 ]]; then
    # Issue 6: host X streamed through the GPU against one copy of X (a budget of X/4).
    timeout "${GPU_STREAM_TIMEOUT:-60}" python3 -m benchmarks.streaming --device cuda \
        --out "$RESULTS_DIR/streaming.json" 2>&1 | tee "$RESULTS_DIR/streaming.log"
    # Shapes A, B, C, F of issue 4; kmeans_xp exact (cupy, torch CUDA), TF32 (cupy:high) and
    # split TF32 (cupy:tf32x3).
    read -r -a bench_args <<<"${GPU_BENCH_ARGS:---iters 5 --repeats 2 --no-e2e}"
    timeout "${GPU_BENCH_TIMEOUT:-270}" python3 -m benchmarks gpu \
        --backends cupy,cupy:high,cupy:tf32x3,torch_cuda "${bench_args[@]}" \
        --out "$RESULTS_DIR/benchmark" \
        2>&1 | tee "$RESULTS_DIR/benchmark.log"
    bench_status=${PIPESTATUS[0]}
    if [[ $bench_status != 0 ]]; then
        echo "benchmark stopped with status $bench_status; the shapes done so far:"
        cat "$RESULTS_DIR/benchmark/gpu.md" 2>/dev/null
        [[ $status == 0 ]] && status=$bench_status
    fi
fi
exit "$status"
