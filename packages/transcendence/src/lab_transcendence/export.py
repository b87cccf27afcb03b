"""Export the lean GPT as a Hugging Face GPT-2 folder, and load such a folder back.

The folder holds `config.json` (GPT2Config, activation "gelu" = exact GELU as in our MLP), `model.safetensors`
(GPT-2 names; Linear weights transposed to GPT-2's Conv1D layout; zero biases where our model has none;
the output head tied to the embedding) and `lab_chess.json` (tokenizer kind, model config, and the training
data's metadata: max rating, experts' ratings for synthetic corpora), and a tokenizer (`tokenizer.json` +
`tokenizer_config.json`, a `PreTrainedTokenizerFast` built with the `tokenizers` library) that gives lab's ids.
`AutoModelForCausalLM.from_pretrained` on it gives the same logits as our model and `AutoTokenizer` the same
ids as lab's tokenizer (`;1.e4 e5` -> [15, 6, 4, 27, 9, 0, 27, 10] for the 32-character vocabulary). A model
with a corpus move vocabulary (`vocab`, vocab.py) also holds `vocab.json`, lab's copy of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from lab_shared.errors import LabError
from lab_shared.io import (
    atomic_write_json,
    atomic_write_text,
    load_tensors,
    read_json,
    save_tensors,
    temp_dir,
)
from lab_transcendence.model import GPT, GPTConfig
from lab_transcendence.tokenizer import get_tokenizer, load_tokenizer

META_FILE = "lab_chess.json"
# Our Linear weights -> GPT-2 Conv1D weights (transposed).
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _tokenizer(tokenizer):
    """A tokenizer object from a kind name (char | move) or the object itself (e.g. a VocabTokenizer)."""
    return get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer


def hf_config_dict(config: GPTConfig, tokenizer) -> dict[str, Any]:
    """The GPT2Config of our model, as the dict written to config.json."""
    tok = _tokenizer(tokenizer)
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu",
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "use_cache": True,
        "tie_word_embeddings": True,
        "bos_token_id": tok.game_start_id,
        "eos_token_id": tok.game_start_id,
        "torch_dtype": "float32",
    }


def to_gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under GPT-2 names (biases filled with zeros when the model has none)."""
    out: dict[str, torch.Tensor] = {}
    sd = model.state_dict()
    for name, w in sd.items():
        if name == "lm_head.weight":
            continue  # tied to transformer.wte.weight
        w = w.detach().float().cpu()
        if any(name.endswith(s) for s in _CONV1D):
            w = w.t().contiguous()
        out[name] = w
    if not model.config.bias:
        for name in list(out):
            if name.endswith(".weight") and not name.endswith(("wte.weight", "wpe.weight")):
                n_out = out[name].shape[-1] if out[name].dim() == 2 else out[name].shape[0]
                out[name[: -len("weight")] + "bias"] = torch.zeros(n_out)
    return out


def export_model(model: GPT, out_dir: str | Path, tokenizer, data_meta: dict | None = None) -> Path:
    """Write `out_dir` as a Hugging Face GPT-2 model folder plus our metadata; returns the folder.
    `tokenizer`: a kind (char | move) or a tokenizer object (a VocabTokenizer is saved as vocab.json)."""
    tok = _tokenizer(tokenizer)
    tokenizer_kind = tok.kind
    if tok.vocab_size > model.config.vocab_size:
        raise LabError(
            f"the {tokenizer_kind} tokenizer has {tok.vocab_size} ids, the model {model.config.vocab_size}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(to_gpt2_state_dict(model), out_dir / "model.safetensors", metadata={"format": "pt"})
    atomic_write_json(out_dir / "config.json", hf_config_dict(model.config, tok))
    if tokenizer_kind == "vocab":
        tok.save(out_dir / "vocab.json")
    data_meta = data_meta or {}
    meta = {
        "tokenizer": tokenizer_kind,
        "model_config": model.config.to_dict(),
        "max_rating": data_meta.get("max_rating"),
        "expert_ratings": data_meta.get("expert_ratings"),
        "data": data_meta,
    }
    atomic_write_json(out_dir / META_FILE, meta)
    save_hf_tokenizer(out_dir, tok, model.config.block_size)
    atomic_write_text(out_dir / "README.md", model_card(model, tok, data_meta))
    return out_dir


def model_card(model: GPT, tokenizer, data_meta: dict) -> str:
    """README.md of an export: what the model is, its sizes and data, and how to use it with transformers."""
    c = model.config
    tok = _tokenizer(tokenizer)
    tokenizer_kind = tok.kind
    vocab = {
        "char": f"the paper's 32 characters `{getattr(tok, 'vocab', '')}`",
        "move": "one token per SAN move",
        "vocab": f"the corpus's {len(getattr(tok, 'moves', []))} most frequent moves, other moves spelled in characters",
    }.get(tokenizer_kind, tokenizer_kind)
    ratings = data_meta.get("expert_ratings")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [chess, transcendence, lab]",
        "---",
        "",
        "# Chess transcript model (lab)",
        "",
        "A GPT-2-style model trained by `lab chess train` on game transcripts in the format of Zhang et al. 2024,",
        "*Transcendence*: `;1.e4 e5 2.Nf3 ...`, a game starting with `;`. It predicts the next token of a game.",
        "",
        f"- size: {model.num_params():,} parameters (without position embeddings); {c.n_layer} layers, "
        f"{c.n_head} heads, width {c.n_embd}, context {c.block_size} tokens",
        f"- tokenizer: `{tokenizer_kind}`, {vocab} ({tok.vocab_size} ids; `;` = game start)",
        f"- training data: max rating {data_meta.get('max_rating')}"
        + (f", experts' ratings {ratings}" if ratings else ""),
        "- files: `config.json` + `model.safetensors` (GPT2LMHeadModel), `tokenizer.json`, `lab_chess.json` "
        "(lab's metadata)",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tok = AutoTokenizer.from_pretrained("FOLDER")',
        'model = AutoModelForCausalLM.from_pretrained("FOLDER")',
        'ids = tok(";1.e4 e5 2.", return_tensors="pt").input_ids  # the same ids lab uses',
        "next_id = model(ids).logits[0, -1].argmax()",
        "print(tok.decode([int(next_id)]))",
        "```",
        "",
        "With lab: `lab chess uci --model FOLDER` (a UCI engine), `lab chess eval --model FOLDER`.",
        "",
    ]
    return "\n".join(lines)


def hf_tokenizer(tokenizer, max_length: int):
    """A `PreTrainedTokenizerFast` with exactly lab's ids: `char` maps each of the 32 characters to its id
    (an unknown character is an error, not a silent drop); `move` drops move numbers and maps each SAN move,
    as lab's MoveTokenizer does (its `decode` leaves the numbers out: use lab's tokenizer for text); `vocab`
    is a BPE with no merges that looks each word up whole (`ignore_merges`) and else spells it in the
    fallback characters (`N ##b ##x ##d ##7 ##+</w>`), as vocab.py does."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    tok = _tokenizer(tokenizer)
    tokenizer_kind = tok.kind
    if tokenizer_kind == "vocab":
        from lab_transcendence.vocab import PREFIX, SUFFIX

        bpe = models.BPE(vocab=dict(tok.stoi), merges=[], unk_token="<unk>", continuing_subword_prefix=PREFIX,
                         end_of_word_suffix=SUFFIX, ignore_merges=True)  # fmt: skip
        backend = HFTokenizer(bpe)  # `<unk>` is not in the vocabulary: an unknown character is an error
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(r"\d+\.+"), behavior="removed"),
                pre_tokenizers.Split(";", behavior="isolated"),
                pre_tokenizers.WhitespaceSplit(),
            ]
        )
        backend.decoder = decoders.Sequence(
            [decoders.Replace(SUFFIX, ""), decoders.WordPiece(PREFIX, cleanup=False)]
        )
    elif tokenizer_kind == "char":
        backend = HFTokenizer(models.WordLevel(vocab=dict(tok.stoi), unk_token=None))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        backend.decoder = decoders.Fuse()
    elif tokenizer_kind == "move":
        backend = HFTokenizer(models.WordLevel(vocab=dict(tok.stoi), unk_token=None))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(r"\d+\."), behavior="removed"),
                pre_tokenizers.Split(";", behavior="isolated"),
                pre_tokenizers.WhitespaceSplit(),
            ]
        )
    else:
        raise LabError(f"no Hugging Face tokenizer for the {tokenizer_kind!r} tokenizer")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=";",  # the game start; nothing is added when encoding (no post-processor)
        eos_token=";",
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )


def save_hf_tokenizer(out_dir: Path, tokenizer, max_length: int) -> None:
    """Write tokenizer.json and tokenizer_config.json into `out_dir`: saved in a temp folder, then each
    file renamed into place, so a killed export leaves no half-written tokenizer."""
    tmp = temp_dir(out_dir)
    try:
        hf_tokenizer(tokenizer, max_length).save_pretrained(str(tmp))
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _find_export(path: Path) -> Path:
    for cand in (path, path / "model", path / "export"):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            if (cand / META_FILE).is_file() or cand == path:
                return cand
    raise LabError(f"no exported chess model in {path} (expected config.json + model.safetensors)")


HF_SIZE_KEYS = {"vocab_size": "vocab_size", "n_positions": "block_size", "n_layer": "n_layer",
                "n_head": "n_head", "n_embd": "n_embd"}  # fmt: skip


def read_export_config(folder: Path) -> tuple[dict, dict]:
    """config.json and lab_chess.json of an export, checked to be JSON objects of the right kind."""
    hf = read_json(folder / "config.json")
    if not isinstance(hf, dict):
        raise LabError(f"{folder}/config.json must hold a JSON object, got {type(hf).__name__}")
    if hf.get("model_type") != "gpt2":
        raise LabError(f"{folder}: not a GPT-2 model folder (model_type={hf.get('model_type')!r})")
    meta = read_json(folder / META_FILE) if (folder / META_FILE).is_file() else {}
    if not isinstance(meta, dict):
        raise LabError(f"{folder}/{META_FILE} must hold a JSON object, got {type(meta).__name__}")
    kind = meta.get("tokenizer", "char")
    if not isinstance(kind, str):
        raise LabError(f"{folder}/{META_FILE}: tokenizer must be a name, got {kind!r}")
    load_tokenizer(kind, folder)  # unknown kind, or a vocab.json that is not one: LabError
    return hf, meta


def config_from_hf(hf: dict, folder: Path) -> GPTConfig:
    """Our GPTConfig from config.json's sizes: every key present, an integer, in range (nothing allocated)."""
    values = {}
    for key, field in HF_SIZE_KEYS.items():
        if key not in hf:
            raise LabError(f"{folder}/config.json lacks the key {key!r}")
        v = hf[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise LabError(f"{folder}/config.json: {key} must be an integer, got {v!r}")
        values[field] = v
    config = GPTConfig(**values)
    try:
        config.validate()
    except LabError as e:
        raise LabError(f"{folder}/config.json: {e}") from None
    return config


def check_tensor_shapes(path: Path, config: GPTConfig) -> None:
    """The safetensors header (read alone, no tensor loaded) agrees with the config's sizes, so that a lying
    config.json cannot make us allocate a model the file does not hold."""
    from safetensors import safe_open

    if not path.is_file():
        raise LabError(f"file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for truncated/garbage headers
        raise LabError(f"corrupt safetensors file {path}: {e}") from None
    want = {
        "transformer.wte.weight": (config.vocab_size, config.n_embd),
        "transformer.wpe.weight": (config.block_size, config.n_embd),
    }
    for name, shape in want.items():
        if shapes.get(name) != shape:
            raise LabError(f"{path}: {name} has shape {shapes.get(name)}, config.json says {shape}")
    layers = {k.split(".")[2] for k in shapes if k.startswith("transformer.h.")}
    if len(layers) != config.n_layer:
        raise LabError(f"{path}: holds {len(layers)} layers, config.json says n_layer={config.n_layer}")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Any, dict]:
    """Load an exported folder (or a training run holding `model/`) as (GPT in eval mode, tokenizer, meta)."""
    folder = _find_export(Path(path))
    hf, meta = read_export_config(folder)
    tokenizer_kind = meta.get("tokenizer", "char")
    config = config_from_hf(hf, folder)
    tok = load_tokenizer(tokenizer_kind, folder)
    if tok.vocab_size > config.vocab_size:
        raise LabError(
            f"{folder}: vocab_size {config.vocab_size} is smaller than the {tokenizer_kind} tokenizer's"
        )
    check_tensor_shapes(folder / "model.safetensors", config)
    tensors = load_tensors(folder / "model.safetensors")
    has_bias = any(k.endswith(".bias") and v.abs().max().item() > 0 for k, v in tensors.items())
    config.bias = has_bias
    model = GPT(config)
    own = model.state_dict()
    state = {}
    for name in own:
        src = "transformer.wte.weight" if name == "lm_head.weight" else name
        if src not in tensors:
            raise LabError(f"{folder}: weight {src} missing from model.safetensors")
        w = tensors[src]
        if any(name.endswith(s) for s in _CONV1D):
            w = w.t()
        if tuple(w.shape) != tuple(own[name].shape):
            raise LabError(
                f"{folder}: weight {name} has shape {tuple(w.shape)}, expected {tuple(own[name].shape)}"
            )
        state[name] = w
    model.load_state_dict(state)
    model.to(device).eval()
    meta.setdefault("tokenizer", tokenizer_kind)
    return model, tok, meta
