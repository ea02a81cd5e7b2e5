"""Stage prepare_gutenberg: character vocabulary, encoded text, held-out tail."""
from __future__ import annotations

import logging

import numpy as np

from ..charlm.vocab import CharVocab
from ..core.command import stage_command
from ..core.config import Params
from ..core.inputs import read_text
from ..core.outputs import PREPARED_GUTENBERG, RAW_GUTENBERG, staged_dir, write_json

log = logging.getLogger(__name__)


def prepare_gutenberg(params: Params) -> dict:
    """Character vocabulary, encoded text and the held-out tail."""
    p = params.gutenberg
    text = read_text(RAW_GUTENBERG / "book.txt", "the stripped book (UTF-8 text)")
    # The vocabulary covers the whole book, so the held-out tail never meets an unknown
    # character; it carries no other information about the tail.
    vocab = CharVocab.build(text)
    encoded = vocab.encode(text)
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    split = int(len(encoded) * (1 - p.val_fraction))
    with staged_dir(PREPARED_GUTENBERG) as out:
        np.save(out / "train.npy", encoded[:split].astype(dtype))
        np.save(out / "val.npy", encoded[split:].astype(dtype))
        vocab.save(out / "chars.json")
        summary = {"characters": len(encoded), "train_characters": split,
                   "val_characters": len(encoded) - split, "vocab_size": len(vocab)}
        write_json(out / "summary.json", summary)
    log.info(f"prepared {len(encoded):,} characters ({len(vocab)} distinct), held out the "
             f"last {len(encoded) - split:,} -> {PREPARED_GUTENBERG}")
    return summary


main = stage_command(prepare_gutenberg)

if __name__ == "__main__":
    main()
