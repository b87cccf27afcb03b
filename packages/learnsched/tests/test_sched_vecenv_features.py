"""setfeatures.set_features (fused page passes, one pass over distinct pages for the pairwise terms) against
the kernel it replaced, value for value, on the states of whole episodes: queues 8, 32 and > 64 slots (no
bitmasks), LRU and clock pools. At exactly 64 slots the old kernel gave slot 63's shared pages to slot 0 (its
bit index loop stopped at the sign bit); that case is checked against a brute-force count instead."""

import numpy as np
import pytest

from lab_learnsched.bufferpool import njit
from lab_learnsched.families import family_workload
from lab_learnsched.setfeatures import N_GLOBAL, N_TOKEN, _ctz, set_features
from lab_learnsched.vecenv import Episode
from lab_learnsched.workload_sources import load_workload

CLIP = 10.0


@njit
def reference_features(
    resident, prev, is_lru, cap, used, need, win, mark, member, sp, sl, sk, n_backlog, out
):
    """setfeatures.set_features as it was before the one-pass pairwise terms (kept here as the reference).

    Slot i's query has the distinct pages sp[i, :sl[i]] (sl[i] = 0: empty slot) and arrival key sk[i].
    `member` (int64 per page, zero) is scratch for the slot bitmasks, left zeroed.
    """
    s_n = sl.shape[0]
    head = resident.shape[0]
    capf = float(cap)
    out[:] = 0.0
    n_q = 0
    for i in range(s_n):
        if sl[i] > 0:
            n_q += 1
    if n_q == 0:
        return
    m_min = 1 << 60
    m_max = 0
    m_sum = 0.0
    n_sum = 0.0
    for i in range(s_n):
        n = sl[i]
        if n == 0:
            continue
        c = 0
        sh_w = 0
        sh_n = 0
        pre = 0
        keep = 0
        for j in range(n):
            p = sp[i, j]
            r = resident[p]
            c += r
            if win[p] > 1:
                sh_w += 1
            if need[p] > 1:
                sh_n += 1
                if r:
                    keep += need[p] - 1
                else:
                    pre += need[p] - 1
            mark[p] = 1
        m = n - c
        e = used + m - cap
        if e < 0:
            e = 0
        if e > used:
            e = used
        dmg = 0
        wdmg = 0
        if e > 0:
            if is_lru:
                v = prev[head]
                got = 0
                steps = 0
                while v != head and got < e and steps < e + n:
                    steps += 1
                    if mark[v] == 0:
                        got += 1
                        if need[v] > 0:
                            dmg += 1
                            wdmg += need[v]
                    v = prev[v]
            else:
                share = min(1.0, c / max(used, 1))
                dmg = int(e * share)
                wdmg = dmg
        for j in range(n):
            mark[sp[i, j]] = 0
        rank = 0
        for k in range(s_n):
            if sl[k] > 0 and sk[k] < sk[i]:
                rank += 1
        o = N_GLOBAL + i * N_TOKEN
        out[o] = 1.0
        out[o + 1] = n / capf
        out[o + 2] = c / max(n, 1)
        out[o + 3] = m / capf
        out[o + 4] = sh_w / max(n, 1)
        out[o + 5] = sh_n / max(n, 1)
        out[o + 6] = pre / capf
        out[o + 7] = keep / capf
        out[o + 8] = e / capf
        out[o + 9] = dmg / capf
        out[o + 10] = wdmg / capf
        out[o + 11] = rank / max(n_q - 1, 1)
        out[o + 14] = 1.0 if rank == 0 else 0.0
        out[o + 15] = dmg / max(e, 1)
        m_min = min(m_min, m)
        m_max = max(m_max, m)
        m_sum += m
        n_sum += n
    mean = m_sum / n_q
    # pairwise: bring[j] = pages of slot j that running slot i reads from disk (so j then hits)
    pair = s_n <= 64
    if pair:
        for i in range(s_n):
            bit = np.int64(1) << np.int64(i)
            for j in range(sl[i]):
                member[sp[i, j]] |= bit
    bring = np.zeros(s_n, np.int64)
    la2_min = 1e18
    la2_max = -1e18
    for i in range(s_n):
        if sl[i] == 0:
            continue
        o = N_GLOBAL + i * N_TOKEN
        m = np.floor(out[o + 3] * capf + 0.5)  # back to the integer count
        out[o + 12] = (m - m_min) / max(m_max - m_min, 1)
        out[o + 13] = m / max(mean, 1.0)
        out[o + 19] = 1.0 if m == m_min else 0.0
        la2 = m
        best_bring = 0
        if pair and n_q > 1:
            bring[:] = 0
            me = np.int64(1) << np.int64(i)
            for j in range(sl[i]):
                p = sp[i, j]
                if resident[p]:
                    continue
                bits = member[p] & ~me
                while bits != 0:
                    low = bits & -bits
                    k = 0
                    t = low
                    while t > 1:
                        t >>= 1
                        k += 1
                    bring[k] += 1
                    bits ^= low
            nxt = 1e18
            for k in range(s_n):
                if k == i or sl[k] == 0:
                    continue
                mk = np.floor(out[N_GLOBAL + k * N_TOKEN + 3] * capf + 0.5)
                if mk - bring[k] < nxt:
                    nxt = mk - bring[k]
                if bring[k] > best_bring:
                    best_bring = bring[k]
            la2 = m + nxt
        out[o + 16] = la2 / capf
        out[o + 17] = best_bring / capf
        la2_min = min(la2_min, la2)
        la2_max = max(la2_max, la2)
    for i in range(s_n):
        if sl[i] == 0:
            continue
        o = N_GLOBAL + i * N_TOKEN
        out[o + 18] = (out[o + 16] * capf - la2_min) / max(la2_max - la2_min, 1.0)
    if pair:
        for i in range(s_n):
            for j in range(sl[i]):
                member[sp[i, j]] = 0
    out[0] = used / capf
    out[1] = np.log1p(n_q) / np.log(33.0)
    out[2] = np.log1p(n_backlog) / np.log(65.0)
    out[3] = m_sum / capf
    out[4] = n_sum / capf
    for f in range(N_GLOBAL + s_n * N_TOKEN):
        x = out[f]
        out[f] = 0.0 if x < 0.0 else (CLIP if x > CLIP else x)


def test_ctz_finds_every_bit():
    for k in range(63):
        assert _ctz(np.int64(1) << np.int64(k)) == k


@pytest.mark.parametrize(
    "spec,queue,policy",
    [("default", None, "lru"), ("skew", 32, "lru"), ("hotset", 80, "lru"), ("mixed", 32, "clock"),
     ("joins", 63, "lru")],
)  # fmt: skip
def test_features_match_the_reference_kernel(spec, queue, policy):
    wl = load_workload(spec) if spec == "default" else family_workload(spec, 0)
    if queue:
        wl = wl.with_updates(queue_size=queue, queries=max(wl.queries, queue + 20))
    ep = Episode(wl, policy=policy)
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(2):
        ep.reset(seed)
        while not ep.finished:
            pool, sp = ep.pool, ep.sp
            prev = pool.prev if policy == "lru" else np.zeros(1, np.int64)
            args = (pool.resident, prev, policy == "lru", ep.cap, pool.used, ep.need, ep.win, ep.mark, ep.member,
                    sp.sp, sp.sl, sp.sk, int(ep.st[0] - ep.st[1]))  # fmt: skip
            got, want = np.full_like(ep.out, -1.0), np.full_like(ep.out, -1.0)
            set_features(*args, got)
            reference_features(*args, want)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(got, ep.out)  # the incremental env's observation too
            assert not ep.mark.any() and not ep.member.any()  # scratch left zeroed
            ep.run(int(rng.choice(np.flatnonzero(ep.mask()))))
            checked += 1
    assert checked > 60


def test_64_slots_pairwise_terms_by_brute_force():
    wl = family_workload("joins", 0).with_updates(queue_size=64, queries=90)
    ep = Episode(wl)
    ep.reset(1)
    for _ in range(5):
        ep.run(int(np.flatnonzero(ep.mask())[0]))
    sp, sl, res = ep.sp.sp, ep.sp.sl, ep.pool.resident
    assert sl[63] > 0
    sets = [set(sp[i, : sl[i]].tolist()) for i in range(64)]
    tok = ep.out[N_GLOBAL:].reshape(64, N_TOKEN)
    for i in range(64):
        if not sl[i]:
            continue
        miss = {p for p in sets[i] if not res[p]}
        bring = [len(miss & sets[k]) if k != i and sl[k] else 0 for k in range(64)]
        assert tok[i, 17] == np.float32(min(max(bring) / ep.cap, CLIP))
