"""Stage acquire_gutenberg: fetch eBook #1268 (official URL or a mirror), record its
digest, keep the book's text without the Project Gutenberg licence."""
from __future__ import annotations

import logging

from ..acquire.mirrors import Source, fetch_first
from ..acquire.sources import strip_gutenberg
from ..core.command import stage_command
from ..core.config import Params
from ..core.outputs import RAW_GUTENBERG, staged_dir, write_json

log = logging.getLogger(__name__)


def acquire_gutenberg(params: Params) -> dict:
    """Download eBook #1268, record its sha256, strip the licence text."""
    p = params.gutenberg
    path, provenance = fetch_first("gutenberg", Source(p.url, p.sha256))
    text = strip_gutenberg(path.read_bytes())
    if p.limit is not None:
        text = text[:p.limit]
    with staged_dir(RAW_GUTENBERG) as out:
        (out / "book.txt").write_text(text, encoding="utf-8", newline="\n")
        summary = {"characters": len(text), "limit": p.limit}
        write_json(out / "summary.json", summary)
    log.info(f"acquired {len(text):,} characters of the book from {provenance['url']} "
             f"-> {RAW_GUTENBERG / 'book.txt'}")
    return summary


main = stage_command(acquire_gutenberg)

if __name__ == "__main__":
    main()
