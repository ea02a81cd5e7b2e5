"""Prepare-stage work: tokenise + vocabulary + encode 50,000 reviews, and loading the
prepared outputs.

  single:   [tokenize(t) for t in texts] in this process (pipeline.sentiment.text)
  parallel: tokenize_many(texts) with all cores (what prepare_imdb does)

then, for both, Vocab.build over the training reviews and Vocab.encode of every review
(as prepare_imdb does). Texts come from the acquired IMDb reviews
(<data-root>/raw/imdb/reviews.parquet) when they exist, else synthetic reviews of the
same shape. Reading the table is timed separately and is not part of the total.

Loading: pipeline.sentiment.reviews.load_reviews(<data-root>/prepared/imdb) (or, without
prepared data, of outputs written from the synthetic run): in this process (first call,
then the median of warm calls) and in a fresh interpreter (the module's import + the load),
which is what a training stage pays. The files are in the page cache in both cases.

Targets: tokenise + vocabulary + encode <= 10 s; load < 1 s.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402
import benchdata as bd  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TARGET_PREPARE_S = 10.0
TARGET_LOAD_S = 1.0


def get_texts(args, n: int):
    """(texts, is_train mask, description)."""
    t0 = time.perf_counter()
    frame = bd.raw_imdb_reviews(args)
    read_s = time.perf_counter() - t0
    if frame is not None:
        if n < len(frame):
            keep = np.sort(np.random.default_rng(args.seed).permutation(len(frame))[:n])
            frame = frame.iloc[keep].reset_index(drop=True)
        return (frame["text"].tolist(), (frame["split"] == "train").to_numpy(),
                f"real: {len(frame):,} acquired reviews (reading the table: {read_s:.1f} s, "
                "not counted)", read_s)
    ids, lengths, _ = bd.synthetic_encoded(n, args.seed)
    texts = bd.synthetic_texts(ids, lengths, bd.synthetic_words(seed=args.seed), args.seed)
    is_train = np.arange(n) < n // 2
    return (texts, is_train,
            f"synthetic: {n:,} reviews (median {np.median(lengths):.0f} tokens, "
            f"{np.mean([len(t) for t in texts]):.0f} characters on average), vocabulary up to "
            f"{bd.SYN_VOCAB:,} (no raw reviews under {bu.data_root(args)})", None)


def prepare(texts, is_train, parallel: bool) -> tuple[dict, list]:
    from pipeline.sentiment.text import Vocab, tokenize, tokenize_many
    t0 = time.perf_counter()
    tokenized = tokenize_many(texts) if parallel else [tokenize(t) for t in texts]
    t1 = time.perf_counter()
    vocab = Vocab.build(t for t, train in zip(tokenized, is_train) if train)
    t2 = time.perf_counter()
    encoded = [vocab.encode(t) for t in tokenized]
    t3 = time.perf_counter()
    return ({"tokenise": t1 - t0, "vocabulary": t2 - t1, "encode": t3 - t2, "total": t3 - t0,
             "vocab_size": len(vocab)}, encoded)


def write_outputs(encoded, is_train, out: Path) -> None:
    """tokens.npy + reviews.parquet in the layout prepare_imdb writes."""
    encoded = [e if len(e) else np.array([1], np.int32) for e in encoded]
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    n = len(encoded)
    np.save(out / "tokens.npy", np.concatenate(encoded).astype(np.int32))
    split = np.where(is_train, "train", "test")
    split[np.flatnonzero(is_train)[: n // 10]] = "val"
    pd.DataFrame({"split": split, "id": np.arange(n, dtype=np.int64),
                  "rating": np.ones(n, np.int64), "label": np.arange(n, dtype=np.int64) % 2,
                  "movie": ["unknown"] * n, "n_tokens": lengths,
                  "offset": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)}
                 ).to_parquet(out / "reviews.parquet", index=False)


COLD_LOAD = r"""
import json, sys, time
t0 = time.perf_counter()
from pipeline.sentiment.reviews import load_reviews
t1 = time.perf_counter()
from pathlib import Path
splits = load_reviews(Path(sys.argv[1]))
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "reviews": sum(len(s) for s in splits.values())}))
"""


def main(argv=None) -> int:
    p = bu.base_parser(__doc__.split("\n")[0])
    p.add_argument("--reviews", type=int, default=None, help="reviews to prepare [50000; quick 3000]")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per variant [2; quick 1]")
    p.add_argument("--load-repeats", type=int, default=5, help="warm in-process loads (median)")
    args = p.parse_args(argv)
    n = args.reviews or (3000 if args.quick else 50_000)
    repeats = args.repeats or (1 if args.quick else 2)

    texts, is_train, desc, read_s = get_texts(args, n)
    rec = bu.Recorder("prepare", args, desc)
    bu.header("prepare: tokenise + vocabulary + encode, and loading the prepared outputs", desc,
              f"{os.cpu_count()} processes for tokenize_many")
    if read_s is not None:
        rec.add("read_raw_s", read_s, "s", reviews=len(texts))

    encoded = bench_prepare(texts, is_train, repeats, rec)
    bench_load(args, encoded, is_train, len(texts), rec)
    rec.finish()
    return 0


def bench_prepare(texts, is_train, repeats: int, rec) -> list:
    """Tokenise + vocabulary + encode, single process and parallel; returns the encoding."""
    prepare(texts[:1000], is_train[:1000], parallel=False)  # warm-up: regexes, allocator
    results, encoded = {}, None
    for name, parallel in (("single", False), ("parallel", True)):
        runs = []
        for _ in range(repeats):
            r, encoded = prepare(texts, is_train, parallel)
            runs.append(r)
        results[name] = {k: bu.median([r[k] for r in runs]) for k in runs[0]}
        results[name]["runs"] = [r["total"] for r in runs]
        print(f"  {name}: {results[name]['total']:.2f} s", flush=True)

    rows = []
    for name, r in results.items():
        label = ("single process: [tokenize(t) for t in texts]" if name == "single"
                 else f"tokenize_many, {os.cpu_count()} processes")
        rows.append([label, f"{r['tokenise']:.2f}", f"{r['vocabulary']:.2f}", f"{r['encode']:.2f}",
                     f"{r['total']:.2f}", f"{results['single']['total'] / r['total']:.2f}x"])
        for phase in ("tokenise", "vocabulary", "encode", "total"):
            rec.add(f"prepare_{phase}_s_{name}", r[phase], "s", reviews=len(texts),
                    repeats=repeats, runs_s=[round(x, 3) for x in r["runs"]] if phase == "total" else None,
                    processes=os.cpu_count() if name == "parallel" else 1)
    print()
    print(bu.table(rows, ["variant", "tokenise s", "vocabulary s", "encode s", "total s",
                          "speed vs single"]))
    print(f"median of {repeats} run(s) each, after a warm-up on 1,000 reviews; vocabulary "
          f"{int(results['parallel']['vocab_size']):,} tokens")
    best = results["parallel"]["total"]
    scaled = best * 50_000 / len(texts)
    full = len(texts) == 50_000
    print(f"target: tokenise + vocabulary + encode of 50,000 reviews <= {TARGET_PREPARE_S:g} s: "
          f"{best:.2f} s" + ("" if len(texts) == 50_000 else
                             f" for {len(texts):,} (x{50_000 / len(texts):.1f} -> {scaled:.1f} s)")
          + f" -> {bu.verdict(scaled <= TARGET_PREPARE_S if full else None)}"
          + ("" if full else " (judged only on a run of 50,000 reviews: process start-up "
                             "does not scale with the count)"))
    rec.add("prepare_50k_s", scaled, "s", target=f"<={TARGET_PREPARE_S}",
            met=scaled <= TARGET_PREPARE_S if full else None, extrapolated=not full)
    return encoded


def bench_load(args, encoded, is_train, n_texts: int, rec) -> None:
    """load_reviews() of the prepared outputs (the real ones, else this run's encoding)."""
    from pipeline.sentiment.reviews import load_reviews
    prepared = bd.prepared_imdb_dir(args)
    tmp = None
    if prepared is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-prepared-")
        prepared = Path(tmp.name)
        write_outputs(encoded, is_train, prepared)
        load_desc = f"outputs written from this run's encoding ({n_texts:,} reviews) to {prepared}"
    else:
        load_desc = f"real: {prepared}"
    size_mb = sum(f.stat().st_size for f in prepared.iterdir() if f.is_file()) / 2 ** 20
    t0 = time.perf_counter()
    load_reviews(prepared)
    first = time.perf_counter() - t0
    warm = bu.time_calls(lambda: load_reviews(prepared), args.load_repeats, warmup=0)
    colds = []
    for _ in range(1 if args.quick else 3):
        out = subprocess.run([sys.executable, "-c", COLD_LOAD, str(prepared)], cwd=bu.REPO,
                             capture_output=True, text=True, check=True)
        colds.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold_import = bu.median([c["import"] for c in colds])
    cold_load = bu.median([c["load"] for c in colds])
    print(f"\nload_reviews(): {load_desc} ({size_mb:.1f} MB)")
    print(bu.table([
        ["in this process, first call", f"{first * 1e3:.1f}"],
        [f"in this process, median of {args.load_repeats} more", f"{bu.median(warm) * 1e3:.1f}"],
        [f"fresh interpreter: import pipeline.sentiment.reviews (median of {len(colds)})", f"{cold_import * 1e3:.1f}"],
        [f"fresh interpreter: load_reviews (median of {len(colds)})", f"{cold_load * 1e3:.1f}"],
    ], ["load", "ms"]))
    print(f"target: load < {TARGET_LOAD_S:g} s: {cold_load:.3f} s in a fresh interpreter "
          f"(+ {cold_import:.3f} s of imports) -> {bu.verdict(cold_load < TARGET_LOAD_S)}")
    rec.add("load_first_s", first, "s", data=load_desc, size_mb=round(size_mb, 2))
    rec.add("load_warm_s", bu.median(warm), "s", data=load_desc)
    rec.add("load_fresh_process_s", cold_load, "s", data=load_desc, target=f"<{TARGET_LOAD_S}",
            met=cold_load < TARGET_LOAD_S)
    rec.add("import_reviews_s", cold_import, "s", data=load_desc)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
