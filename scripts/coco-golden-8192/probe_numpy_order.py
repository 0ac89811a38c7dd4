#!/usr/bin/env python3
"""Which summation order does this numpy use for np.mean on a 1-D contiguous float64 array?

Candidate orders are written out in plain Python floats and compared with np.add.reduce / np.mean
on adversarial inputs (mixed signs and magnitudes, [0,1) values, repeated COCO-like values) of
sizes around and far above 8,192, on arrays made the way summarize() makes them (s[s > -1]).
The order that matches every case is numpy's. Run: /usr/bin/python3 probe_numpy_order.py [seed]

numpy 1.24.2 (Debian 12, the reference pycocotools ran on): 'blk8192' matches all cases, with the
pairwise leaf of 8 accumulators / 128 values; numpy 2.4.6 matches 'whole' instead (see docs/eval-coco.md).
"""
import random, sys
import numpy as np


def pw(a, off, n, blk=128):
    """numpy's pairwise_sum for one inner-loop call; blk is the leaf size under test."""
    if n < 8:
        r = 0.0
        for i in range(n):
            r += a[off + i]
        return r
    if n <= blk:
        r = [a[off + j] for j in range(8)]
        i, end = 8, n - n % 8
        while i < end:
            for j in range(8):
                r[j] += a[off + i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[off + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pw(a, off, n2, blk) + pw(a, off + n2, n - n2, blk)


def blocks(a, size, blk=128):
    res = 0.0
    for s in range(0, len(a), size):
        res += pw(a, s, min(size, len(a) - s), blk)
    return res


CANDIDATES = {
    'whole': lambda a: 0.0 + pw(a, 0, len(a)),
    'blk8192': lambda a: blocks(a, 8192),
    'first+blk8192': lambda a: a[0] + blocks(a[1:], 8192),  # output seeded with a[0] instead of 0
    'blk4096': lambda a: blocks(a, 4096),
    'blk16384': lambda a: blocks(a, 16384),
    'blk8192/leaf64': lambda a: blocks(a, 8192, 64),
    'blk8192/leaf256': lambda a: blocks(a, 8192, 256),
}


def main():
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    sizes = [200, 1000, 8191, 8192, 8193, 9000, 10010, 16383, 16384, 16385, 20000, 24577, 40000, 80800, 100000]
    sizes += [rng.randint(1, 120000) for _ in range(30)]
    score = {k: 0 for k in CANDIDATES}
    total = 0
    for n in sizes:
        for kind in range(3):
            if kind == 0:
                a = [rng.choice([-1, 1]) * rng.random() * 2.0 ** rng.randint(-40, 40) for _ in range(n)]
            elif kind == 1:
                a = [rng.random() for _ in range(n)]
            else:
                a = [rng.choice([0.0, 1.0, 1 / 3, rng.random()]) for _ in range(n)]
            x = np.concatenate([np.array(a), -np.ones(5)])
            x = x[x > -1] if kind else x[:n]  # boolean mask: a fresh contiguous array, as in summarize()
            ref_sum, ref_mean = float(np.add.reduce(x)), float(np.mean(x))
            xs = list(map(float, x))
            total += 1
            for k, f in CANDIDATES.items():
                v = f(xs)
                score[k] += v == ref_sum and v / len(xs) == ref_mean
    print('numpy', np.__version__, 'cases', total, {k: f'{v}/{total}' for k, v in score.items()})


if __name__ == '__main__':
    main()
