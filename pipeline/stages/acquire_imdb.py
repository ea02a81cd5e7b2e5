"""Stage acquire_imdb: fetch the IMDb archive (official URL or a mirror), verify its
sha256, extract and check the reviews (labelled, and unlabelled where the archive has them),
gather them into one parquet table."""
from __future__ import annotations

import logging
import shutil

from ..acquire.mirrors import Source, fetch_first
from ..acquire.sources import extract_imdb, read_imdb_tree
from ..core.command import stage_command
from ..core.config import Params
from ..core.outputs import RAW_IMDB, staged_dir, write_json

log = logging.getLogger(__name__)


def acquire_imdb(params: Params) -> dict:
    """Download the IMDb archive, verify its sha256, extract and check it."""
    p = params.imdb
    archive, provenance = fetch_first("imdb", Source(p.url, p.sha256))
    with staged_dir(RAW_IMDB) as out:
        tree = out / "extracted"
        counts = extract_imdb(archive, tree, limit=p.limit,
                              expected_per_class=p.expected_per_class,
                              expected_unlabelled=p.expected_unlabelled)
        table, read_stats = read_imdb_tree(tree / "aclImdb", p.bad_utf8)
        # One table instead of 50,000 small files: DVC hashes and checks one file, so
        # a `dvc repro` with nothing to do stays fast.
        shutil.rmtree(tree)
        table.to_parquet(out / "reviews.parquet", index=False, write_page_checksum=True)
        # Only what the content determines: where it came from is provenance, kept
        # outside every hashed output.
        summary = {**counts, **read_stats}
        write_json(out / "summary.json", summary)
    log.info(f"acquired {summary['reviews']:,} labelled and {summary['unlabelled']:,} "
             f"unlabelled reviews from {provenance['url']} "
             f"(sha256 {provenance['sha256'][:12]}...) -> {RAW_IMDB / 'reviews.parquet'}")
    return summary


main = stage_command(acquire_imdb)

if __name__ == "__main__":
    main()
