"""Buffer pool simulator: fast kernels agree with the plain reference; MIN bounds LRU; the paper's example."""

import itertools

import numpy as np
import pytest

from lab_learnsched.bufferpool import BufferPool, distinct_floor, simulate_order
from lab_learnsched.bufferpool_naive import simulate_order_naive
from lab_learnsched.oracles import beam_order, exact_order
from lab_shared.errors import LabError


def _random_case(rng):
    n = int(rng.integers(2, 50))
    cap = int(rng.integers(1, n + 3))
    qs = [rng.integers(0, n, size=int(rng.integers(1, 15))) for _ in range(int(rng.integers(1, 9)))]
    return n, cap, qs


@pytest.mark.parametrize("policy", ["lru", "clock", "min"])
def test_fast_matches_reference_on_random_traces(policy):
    rng = np.random.default_rng(1)
    for _ in range(300):
        n, cap, qs = _random_case(rng)
        h, r = simulate_order(n, qs, cap, policy)
        h2, r2 = simulate_order_naive(qs, cap, policy)
        assert list(h) == h2 and list(r) == r2


def test_min_never_reads_more_than_lru_or_clock():
    rng = np.random.default_rng(2)
    for _ in range(300):
        n, cap, qs = _random_case(rng)
        m = simulate_order(n, qs, cap, "min")[1].sum()
        assert m <= simulate_order(n, qs, cap, "lru")[1].sum()
        assert m <= simulate_order(n, qs, cap, "clock")[1].sum()


def test_clock_usage_counts_protect_hot_pages():
    # page 0 is hit 5 times (usage 5); a scan of new pages through a 2-buffer pool evicts page 1 first
    pool = BufferPool(10, 2, "clock")
    pool.access(np.array([0, 1, 0, 0, 0, 0, 0]))
    pool.access(np.array([2]))
    assert pool.resident[0] == 1 and pool.resident[1] == 0 and pool.resident[2] == 1


def test_lru_evicts_least_recent_and_copy_is_independent():
    pool = BufferPool(10, 2, "lru")
    pool.access(np.array([1, 2, 1, 3]))  # 2 is least recent when 3 arrives
    assert sorted(np.flatnonzero(pool.resident)) == [1, 3]
    c = pool.copy()
    c.access(np.array([4, 5]))
    assert sorted(np.flatnonzero(pool.resident)) == [1, 3]
    assert sorted(np.flatnonzero(c.resident)) == [4, 5]


def test_bad_pool_arguments():
    with pytest.raises(LabError):
        BufferPool(10, 0)
    with pytest.raises(LabError):
        BufferPool(10, 2, "min")  # offline only
    with pytest.raises(LabError):
        BufferPool(10, 2, "fifo")


def test_paper_motivating_example_oracle_beats_fifo():
    # three queries, Q1 and Q3 read the same two blocks, Q2 two others; the pool holds two blocks
    q1, q2, q3 = np.array([0, 1]), np.array([2, 3]), np.array([0, 1])
    qs = [q1, q2, q3]
    fifo_reads = simulate_order(4, qs, 2, "lru")[1].sum()
    pool = BufferPool(4, 2, "lru")
    order, reads = exact_order(pool, qs)
    assert fifo_reads == 6
    assert reads == 4 and reads < fifo_reads
    assert abs(order.index(0) - order.index(2)) == 1  # Q1 and Q3 run back to back
    assert reads == distinct_floor(qs)  # the floor is reached


def test_exact_order_is_the_brute_force_optimum():
    rng = np.random.default_rng(3)
    for _ in range(15):
        n = 30
        qs = [np.sort(rng.choice(n, size=int(rng.integers(2, 9)), replace=False)) for _ in range(6)]
        for policy in ("lru", "clock"):
            brute = min(
                simulate_order(n, [qs[i] for i in p], 8, policy)[1].sum()
                for p in itertools.permutations(range(6))
            )
            order, reads = exact_order(BufferPool(n, 8, policy), qs)
            assert reads == brute
            assert simulate_order(n, [qs[i] for i in order], 8, policy)[1].sum() == reads
            b_order, b_reads = beam_order(BufferPool(n, 8, policy), qs, width=4)
            assert b_reads >= reads and sorted(b_order) == list(range(6))
            assert reads >= distinct_floor(qs)


def test_warm_start_and_floor_with_cache():
    pool = BufferPool.from_cached(20, 5, np.array([1, 2, 3]))
    assert pool.count_cached(np.array([1, 2, 9])) == 2
    assert distinct_floor([np.array([1, 2, 9])], pool.resident) == 1
    h, r = simulate_order(20, [np.array([1, 2, 9])], 5, "lru", warm=np.array([1, 2, 3]))
    assert (h[0], r[0]) == (2, 1)
