"""Byte-level tokenizer: 256 byte ids plus PAD/BOS/EOS.

Nothing can be downloaded here, and a byte vocabulary needs no training, covers every text on the machine
(legal text, Python sources, man pages, digits) and keeps the embedding table tiny for the CPU presets.
"""

from __future__ import annotations

PAD_ID = 256
BOS_ID = 257
EOS_ID = 258
VOCAB_SIZE = 259


class ByteTokenizer:
    """UTF-8 bytes as token ids; `decode` drops the special ids and replaces broken UTF-8."""

    vocab_size = VOCAB_SIZE
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids) -> str:
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")
