"""Assign SIDs to 1M / 10M synthetic vectors streamed from a memmap; print time and peak RSS.

The quantizer is trained on a sample (``--train``, balanced, like ``neo sids build``); every vector
is then assigned with the saved centroids in chunks (``ResidualQuantizer.assign``, what ``neo sids
assign`` does), and disambiguation codes are computed for all of them at once from packed code
tuples. Each size runs in its own child process so peak RSS is per size.

Goal (issue 3): 10M vectors in <= 10 minutes and <= 4 GB RSS on 2 cores.

    python bench/sids_scale.py --sizes 1000000 10000000 [--dim 384] [--workdir /tmp/neo-sids-bench]

Vectors are a Gaussian mixture (4,096 centres + unit noise) so k-means has structure to find. The memmap is
generated once per (size, dim) and reused; generation time is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _window(path: Path, lo: int, hi: int, dim: int, mode: str = "r") -> np.memmap:
    """A memmap of rows ``lo:hi`` only; dropping it unmaps the pages (so RSS stays flat)."""
    return np.memmap(path, dtype=np.float32, mode=mode, offset=lo * dim * 4, shape=(hi - lo, dim))


def make_memmap(path: Path, n: int, dim: int, *, chunk: int = 262_144, seed: int = 0) -> float:
    """Write ``n`` float32 vectors to ``path`` (if missing); returns seconds spent."""
    if path.exists() and path.stat().st_size == n * dim * 4:
        return 0.0
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4096, dim)).astype(np.float32)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.truncate(n * dim * 4)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        out = _window(tmp, lo, hi, dim, "r+")
        out[:] = centres[rng.integers(0, 4096, hi - lo)] + rng.standard_normal((hi - lo, dim), dtype=np.float32)
        out.flush()
        del out  # unmap: written pages leave this process's RSS
    tmp.rename(path)
    return time.perf_counter() - start


def run_one(n: int, dim: int, workdir: Path, train: int, chunk: int, seed: int) -> dict[str, float | int]:
    from neo_sdk.sids import default_shape, disambiguate, train_residual

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"vectors_{n}_{dim}.f32"
    gen_s = make_memmap(path, n, dim, seed=seed)
    levels, k = default_shape(n)

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(train, n), replace=False))
    train_x = np.empty((sample.size, dim), dtype=np.float32)
    for lo in range(0, n, chunk):  # gather the sample window by window (random access maps everything)
        hi = min(n, lo + chunk)
        a, b = np.searchsorted(sample, [lo, hi])
        window = _window(path, lo, hi, dim)
        train_x[a:b] = window[sample[a:b] - lo]
        del window
    q, _ = train_residual(train_x, levels, k, seed=seed, niter=20, balanced=True,
                          slack=1.5, normalize=True)
    del train_x
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    codes = np.empty((n, levels), dtype=np.int16 if k <= 32767 else np.int32)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        window = _window(path, lo, hi, dim)
        codes[lo:hi], _ = q.assign(np.asarray(window))
        del window
    assign_s = time.perf_counter() - start

    start = time.perf_counter()
    d = disambiguate(codes, np.zeros(n, dtype=np.int8))
    dedupe_s = time.perf_counter() - start
    largest = int(d.max()) + 1
    shared = float((d > 0).sum())  # items beyond the first of their tuple
    return {
        "items": n, "dim": dim, "levels": levels, "codes": k, "train_sample": int(sample.size),
        "generate_s": round(gen_s, 1), "train_s": round(train_s, 1), "assign_s": round(assign_s, 1),
        "disambiguate_s": round(dedupe_s, 1), "total_s": round(train_s + assign_s + dedupe_s, 1),
        "items_per_s": round(n / (assign_s + dedupe_s)), "largest_bucket": largest,
        "unique_tuple_share": round(1 - shared / n, 4), "peak_rss_mb": round(_rss_mb()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (MiniLM: 384)")
    parser.add_argument("--train", type=int, default=100_000, help="quantizer training sample")
    parser.add_argument("--chunk", type=int, default=65_536, help="vectors per assignment chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "neo-sids-bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one size, measured in a fresh process
        print(json.dumps(run_one(args.sizes[0], args.dim, args.workdir, args.train, args.chunk, args.seed)))
        return 0
    print(f"SID assignment scale bench: dim {args.dim}, train sample {args.train}, chunk {args.chunk}, "
          f"{os.cpu_count()} CPUs")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", "--sizes", str(n), "--dim", str(args.dim), "--train",
               str(args.train), "--chunk", str(args.chunk), "--seed", str(args.seed), "--workdir", str(args.workdir)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['items']:>11,} items M={r['levels']} K={r['codes']}: train {r['train_s']} s, assign "
            f"{r['assign_s']} s, disambiguate {r['disambiguate_s']} s -> total {r['total_s']} s "
            f"({r['items_per_s']:,}/s), peak RSS {r['peak_rss_mb']} MB, largest bucket {r['largest_bucket']}, "
            f"unique-tuple share {r['unique_tuple_share']} (memmap generation {r['generate_s']} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
