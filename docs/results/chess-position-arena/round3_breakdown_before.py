import sys, time, random
import torch, chess, numpy as np
torch.set_num_threads(1)
from lab_transcendence.position_model import PositionConfig, PositionPolicy
from lab_transcendence.position_player import PositionPlayer
from lab_transcendence.player import _rng, sample_index
from lab_transcendence.board import encode
from lab_transcendence.moves import legal_indices
torch.manual_seed(0)
model = PositionPolicy(PositionConfig()).eval()
rng = random.Random(1)
plies=60; games=32
bpp=[[] for _ in range(plies)]
for _ in range(games):
    b=chess.Board()
    for p in range(plies):
        legal=list(b.legal_moves)
        if not legal: b=chess.Board(); legal=list(b.legal_moves)
        bpp[p].append(b.copy(stack=False)); b.push(rng.choice(legal))
batches=bpp[::2]
player=PositionPlayer(model, 0.001); net=player.net
P=time.perf_counter
def chunk(boards, T):
    t=P(); enc = np.stack([encode(b) for b in boards]); T['encode']+=P()-t
    t=P(); uniq, inverse = np.unique(enc, axis=0, return_inverse=True); T['unique']+=P()-t
    t=P(); xx=torch.from_numpy(uniq); pl=net._planes(xx); T['planes']+=P()-t
    t=P(); h = net.body(net.stem(pl)); T['body']+=P()-t
    t=P(); logits=net(xx); T['fullfwd']+=P()-t
    t=P(); legal = [legal_indices(b) for b in boards]; T['legal']+=P()-t
    t=P()
    width = max(1, max(len(ix) for _, ix in legal))
    idx = np.zeros((len(boards), width), dtype=np.int64)
    valid = np.zeros((len(boards), width), dtype=bool)
    for r, (_, ix) in enumerate(legal):
        idx[r, : len(ix)] = ix
        valid[r, : len(ix)] = True
    rows = torch.from_numpy(inverse.reshape(-1))
    picked = logits[rows[:, None], torch.from_numpy(idx)].double() / 0.001
    picked = picked.masked_fill(~torch.from_numpy(valid), float("-inf"))
    lp = torch.log_softmax(picked, dim=1).cpu().numpy()
    out=[(moves, lp[r, : len(ix)]) for r, (moves, ix) in enumerate(legal)]
    T['gather']+=P()-t
    t=P()
    for m, l in out: m[sample_index(l, _rng(5, 3, 0))]
    T['sample']+=P()-t
with torch.inference_mode():
    for label, groups in (("batched", [bs for bs in batches]), ("single", [[b] for bs in batches for b in bs])):
        T=dict.fromkeys(['encode','unique','planes','body','fullfwd','legal','gather','sample'],0.0)
        for g in groups: chunk(g, T)
        T=dict.fromkeys(T,0.0)
        for g in groups: chunk(g, T)
        print(label, {k: round(v*1e3,1) for k,v in T.items()}, "sum excl body/planes:", round((sum(T.values())-T['body']-T['planes'])*1e3,1))
