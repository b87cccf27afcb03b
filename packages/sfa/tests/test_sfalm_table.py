"""The LM tables' shared helpers (lab_sfa.lm.table): cached points, mean ± std cells, per-task means."""

import json

from lab_sfa.lm.table import best_sfa, cached_point, slug, summary_cells, task_means


def _res(acc, r_final, loss):
    return {"tasks": ["math", "law"], "acc": acc, "bwt": -0.1, "forgetting": 0.1, "plasticity": acc + 0.1,
            "R": [[0.0, 0.0], r_final], "loss_final": loss}  # fmt: skip


def test_cached_point_reruns_only_when_the_setting_changes(tmp_path, capsys):
    calls = []

    def run(label, seed):
        calls.append((label, seed))
        return _res(0.5, [0.4, 0.6], [1.0, 2.0])

    a = cached_point(tmp_path, "sfa b=0.5", 1, {"steps": 4}, run)
    b = cached_point(tmp_path, "sfa b=0.5", 1, {"steps": 4}, run)
    assert a == b and calls == [("sfa b=0.5", 1)]
    point = tmp_path / "points" / f"{slug('sfa b=0.5')}-s1.json"
    assert json.loads(point.read_text())["setting"] == {"steps": 4}
    cached_point(tmp_path, "sfa b=0.5", 1, {"steps": 8}, run)
    assert len(calls) == 2
    assert "sfa b=0.5            seed 1: ACC 0.500 BWT -0.100 R_final [0.4, 0.6]" in capsys.readouterr().out


def test_cells_and_task_means_over_seeds():
    runs = [_res(0.2, [0.1, 0.3], [1.0, 3.0]), _res(0.4, [0.3, 0.5], [2.0, 4.0])]
    cells = summary_cells(runs)
    assert abs(cells["_acc"] - 0.3) < 1e-12
    assert cells["ACC"].startswith("0.300 ± ") and list(cells)[:2] == ["ACC", "_acc"]
    assert task_means(runs, lambda r: r["R"][-1], "{} score") == {"math score": 0.2, "law score": 0.4}
    assert task_means(runs, lambda r: r["loss_final"], "{} loss") == {"math loss": 1.5, "law loss": 3.5}
    assert best_sfa({"seq": 0.3, "sfa a": 0.2, "sfa b": 0.25}) == (0.25, "sfa b")
    assert best_sfa({"seq": 0.3}) is None
