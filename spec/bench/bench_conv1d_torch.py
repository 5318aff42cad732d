"""PyTorch side of spec/bench/bench_conv1d.lua: same shapes, same timing rule.

argv[1]: "C,T,K,d;C,T,K,d;..."  argv[2]: seconds per timing run.
Prints "C,T,K,d,threads fwd_gflops bwd_gflops" per shape and thread count."""
import sys
import time

import torch
import torch.nn.functional as F


def best_time(fn, budget):
    """Minimum over single calls for `budget` seconds (at least 30): robust on a shared machine."""
    fn()
    best, calls, start = float("inf"), 0, time.perf_counter()
    while calls < 30 or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


def main():
    shapes = [tuple(int(v) for v in s.split(",")) for s in sys.argv[1].split(";")]
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    passes = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    best = {}
    for _ in range(passes):  # best of several passes, as the Lua side does
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for i, (C, T, K, d) in enumerate(shapes):
                torch.manual_seed(i)
                x = torch.randn(1, C, T + (K - 1) * d, requires_grad=True)
                w = torch.randn(C, C, K, requires_grad=True)
                gy = torch.randn(1, C, T)

                def fwd():
                    with torch.no_grad():
                        F.conv1d(x, w, None, dilation=d)

                def fwd_bwd():
                    F.conv1d(x, w, None, dilation=d).backward(gy)

                tf, tfb = best_time(fwd, budget), best_time(fwd_bwd, budget)
                key = (C, T, K, d, threads)
                old = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(old[0], tf), min(old[1], tfb))
    for (C, T, K, d, threads), (tf, tfb) in best.items():
        flops = 2 * C * C * K * T
        tb = max(tfb - tf, 1e-9)
        print(f"{C},{T},{K},{d},{threads} {flops / tf / 1e9:.4f} {2 * flops / tb / 1e9:.4f}", flush=True)


if __name__ == "__main__":
    main()
