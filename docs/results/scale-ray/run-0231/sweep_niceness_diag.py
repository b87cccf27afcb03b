import os, time, tempfile, json
os.environ.setdefault("LAB_PROGRESS", "0")
os.environ["LAB_RUNS"] = tempfile.mkdtemp()
from lab_sfa.sweep import parse_spec, point_config
base = {"sequence.name": "default", "sequence.width": 8, "sequence.n_train": 400, "sequence.n_val": 100,
        "sequence.n_test": 200, "sequence.n_pretrain": 1000, "pretrain_steps": 40, "trainer.max_steps": 40, "trainer.lr": 1e-3}
spec = {"seeds": [0, 1], "base": base, "grid": [{"method": "seq"}, {"method": "sfa", "method.beta": [0.1]}]}
b, points, seeds, _ = parse_spec(spec)
cfgs = [point_config(b, p, s, []) for p in points for s in seeds]

def runs(cfgs):
    import torch
    from lab_sfa.task_loop import run_continual
    out = []
    for c in cfgs:
        t = time.perf_counter(); c0 = time.process_time(); run_continual(c)
        out.append((round(time.perf_counter() - t, 2), round(time.process_time() - c0, 2)))
    return {"times": out, "threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS"), "aff": sorted(os.sched_getaffinity(0)), "nice": os.nice(0),
            "mkldnn": torch.backends.mkldnn.is_available(), "flush_denormal": None}
print("local", runs(cfgs[:1]), flush=True)
print("local", runs(cfgs), flush=True)
import ray
ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="warning")
r = ray.remote(runs)
print("ray", ray.get(r.remote(cfgs[:1])), flush=True)
print("ray", ray.get(r.remote(cfgs)), flush=True)
ray.shutdown()
