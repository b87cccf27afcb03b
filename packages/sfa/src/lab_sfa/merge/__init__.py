"""Model merging: Task Arithmetic, TIES and WiSE-FT, in memory and over saved checkpoints (`lab sfa merge`).

    state_dicts.py    the merge math over in-memory state dicts (used by the methods and by the checkpoints)
    checkpoint_io.py  reading / writing checkpoints: .safetensors files, HF model folders, lab run checkpoints
    streaming.py      tensor-by-tensor merges of safetensors inputs (one tensor per input in memory)
    checkpoints.py    `merge_checkpoints`: saved checkpoints in, a loadable model out (streamed or loaded whole)
    mergekit.py       mergekit YAML configs, read and written
    cli.py            the `lab sfa merge` command

Nothing is imported here, so `lab --help` does not load torch.
"""
