"""The position policy's configuration (torch-free, so configs load without importing torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lab_transcendence.moves import MOVE_SPACE

MODEL_TYPE = "lab_chess_position"
ARCHES = ("cnn", "transformer")


@dataclass
class PositionConfig:
    arch: str = "cnn"  # cnn | transformer
    width: int = 64  # channels (cnn) or d_model (transformer)
    layers: int = 6  # residual blocks (cnn) or encoder blocks (transformer)
    heads: int = 4  # transformer only
    head_dim: int = 64  # size of the from / to vectors
    move_space: int = MOVE_SPACE

    def to_dict(self) -> dict:
        return asdict(self)
