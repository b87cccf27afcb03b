"""Each baseline on hand-made cases, and the registry."""

import numpy as np
import pytest

from lab_learnsched.bufferpool import BufferPool
from lab_learnsched.env import BufferPoolEnv
from lab_learnsched.evaluate import episodes, run_episode
from lab_learnsched.schedulers import SchedState, make_scheduler
from lab_learnsched.workload import Tables, make_query
from lab_shared.errors import LabError

T = Tables(("a",), (100,))


def q(qid, blocks, arrival=0.0):
    return make_query(T, f"q{qid}", {"a": blocks}, qid, arrival)


def state(slots, cached=(), cap=10):
    pool = BufferPool.from_cached(100, cap, np.array(cached, dtype=np.int64))
    return SchedState(slots, pool)


def test_fifo_shortest_greedy_lookahead():
    # slot 0: late arrival, 6 pages, 3 cached; slot 1: earliest, 2 pages none cached;
    # slot 2: 4 pages, 2 cached (fewest reads = 2, same as slot 1)
    slots = [q(5, [0, 1, 2, 50, 51, 52], 3.0), q(1, [60, 61], 1.0), None, q(2, [3, 4, 70, 71], 2.0)]
    st = state(slots, cached=[0, 1, 2, 3, 4])
    assert make_scheduler("fifo").choose(st) == 1
    assert make_scheduler("shortest").choose(st) == 1
    assert make_scheduler("greedy").choose(st) == 0  # most cached pages (3)
    assert make_scheduler("lookahead:1").choose(st) == 1  # 2 reads; tie with slot 3 broken FIFO


def test_lookahead_sees_sharing_greedy_does_not():
    # pool of 4. B (3 pages) is cheapest now, but A and C share 3 pages: running A then C saves reads
    a, b, c = q(0, [10, 11, 12, 13]), q(1, [20, 21, 22]), q(2, [10, 11, 12, 30])
    st = state([a, b, c], cap=4)
    one = make_scheduler("lookahead:1").choose(st)
    two = make_scheduler("lookahead:2").choose(st)
    assert one == 1
    assert two in (0, 2)


def test_random_picks_only_valid_slots_and_is_seeded():
    slots = [None, q(1, [1]), None, q(2, [2])]
    st = state(slots)
    picks = [make_scheduler("random", seed=3).choose(st) for _ in range(5)]
    assert set(picks) <= {1, 3} and len(set(picks)) == 1
    r = make_scheduler("random", seed=0)
    assert {r.choose(st) for _ in range(40)} == {1, 3}


def test_empty_queue_and_unknown_scheduler():
    with pytest.raises(LabError, match="empty queue"):
        make_scheduler("greedy").choose(state([None, None]))
    with pytest.raises(LabError, match="unknown scheduler"):
        make_scheduler("smartest")
    with pytest.raises(LabError):
        make_scheduler("lookahead:x")
    with pytest.raises(LabError):
        make_scheduler("agent")


def test_policies_on_small_batches_ordering():
    # on batches that fit the queue, the optimum is never beaten and FIFO/random are worst on average
    env = BufferPoolEnv("small")
    seeds = list(range(6))
    eps = episodes(env, seeds)
    reads = {}
    for name in ("fifo", "random", "greedy", "lookahead:2", "optimal"):
        reads[name] = [run_episode(env, make_scheduler(name), s, e).reads for s, e in zip(seeds, eps)]
    small = env.workload.with_updates(queries=4)
    env4 = BufferPoolEnv(small)
    e4 = episodes(env4, seeds)
    for s, e in zip(seeds, e4):
        opt = run_episode(env4, make_scheduler("optimal"), s, e).reads
        for name in ("fifo", "greedy", "lookahead:1", "shortest"):
            assert run_episode(env4, make_scheduler(name), s, e).reads >= opt
    assert np.mean(reads["lookahead:2"]) <= np.mean(reads["fifo"])
    assert np.mean(reads["optimal"]) <= np.mean(reads["random"])
