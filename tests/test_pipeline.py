"""End to end: `dvc repro` in a copy of the repo on tiny fixture data served over
HTTP on 127.0.0.1, then the MLflow store, DVC's bookkeeping and the CLI are checked."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from pipeline.core.outputs import sha256_file
from pipeline.mlops.lineage import cpu_name
from pipeline.dvcgraph import closure, stage_module
from tests.repo import (ALL_STAGES, N_PER_CLASS, N_UNLABELLED, env, make_repo, run,
                        stages_run)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(fixture_data, tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("pipeline") / "repo", fixture_data)
    proc = run(["dvc", "repro"], repo)
    assert set(stages_run(proc.stdout)) == ALL_STAGES
    return repo


def client(repo) -> MlflowClient:
    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


def stage_runs(repo, experiment: str, stage: str):
    c = client(repo)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return c, [r for r in c.search_runs([exp.experiment_id])
               if r.data.tags.get("dvc_stage") == stage]


def only_run(repo, experiment: str, stage: str):
    c, runs = stage_runs(repo, experiment, stage)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return c, runs[0]


def test_metrics_files(repo):
    sentiment = json.loads((repo / "metrics/sentiment.json").read_text())
    charlm = json.loads((repo / "metrics/charlm.json").read_text())
    assert 0.0 <= sentiment["test_accuracy"] <= 1.0
    assert sentiment["test_reviews"] == 2 * 60
    # A 32-unit LSTM trained 40 steps is far from good, but below uniform guessing.
    vocab = len(json.loads((repo / "data/prepared/gutenberg/chars.json").read_text()))
    assert 0 < charlm["val_loss"] < torch.log(torch.tensor(float(vocab))).item()
    assert charlm["val_bpc"] == pytest.approx(charlm["val_loss"] / 0.6931471805599453)
    # Dynamic evaluation: settings from the params' grid, tuned on training text, and a
    # held-out figure of its own.
    assert charlm["dynamic_lr"] in (0.01, 0.03, 0.1) and charlm["dynamic_decay"] == 0.0
    assert charlm["tune_loss_dynamic"] > 0 and charlm["tune_loss_static"] > 0
    assert 0 < charlm["val_loss_dynamic"] < torch.log(torch.tensor(float(vocab))).item()
    shown = run(["dvc", "metrics", "show", "--json"], repo).stdout
    assert "test_accuracy" in shown and "val_bpc" in shown
    samples = (repo / "data/eval/charlm/samples.txt").read_text()
    assert samples.count("=== temperature") == 3


def test_acquired_reviews_are_one_table(repo):
    # One file for DVC to hash and check, not a tree of one file per review.
    raw = repo / "data/raw/imdb"
    assert sorted(p.name for p in raw.iterdir()) == ["reviews.parquet", "summary.json"]
    import pandas as pd
    table = pd.read_parquet(raw / "reviews.parquet")
    assert len(table) == 4 * N_PER_CLASS + N_UNLABELLED
    assert table.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): N_PER_CLASS, ("test", 1): N_PER_CLASS, ("train", 0): N_PER_CLASS,
        ("train", 1): N_PER_CLASS, ("unsup", -1): N_UNLABELLED}
    assert json.loads((raw / "summary.json").read_text())["bad_utf8"] == 0


def test_sentiment_run_is_tracked(repo):
    c, r = only_run(repo, "sentiment", "train_sentiment")
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert r.data.tags["git_commit"] == head
    assert r.data.tags["dvc_stage"] == "train_sentiment"
    assert r.data.tags["device"] == "cpu"
    assert r.data.tags["cpu"] == cpu_name()  # floats may differ in the last bits by CPU model
    # What made it: the stage's params and deps by digest, the library versions.
    assert len(r.data.tags["params_digest"]) == 64 and len(r.data.tags["deps_digest"]) == 64
    assert r.data.tags["torch_version"] == torch.__version__
    assert r.data.tags["cuda_version"] == "none" and r.data.tags["git_dirty"] == "false"
    # Each stage's log, on the run: the training's and the evaluation's.
    logs = {a.path for a in c.list_artifacts(r.info.run_id, "logs")}
    assert logs == {"logs/train_sentiment.log", "logs/evaluate_sentiment.log"}
    text = (Path(c.download_artifacts(r.info.run_id, "logs/evaluate_sentiment.log")).read_text())
    assert "test accuracy" in text and "\r" not in text
    assert r.data.params["sentiment.epochs"] == "2"
    assert r.data.params["seed"] == "1"
    # Provenance of the downloaded archive travels with the run.
    assert len(r.data.params["data.source.sha256"]) == 64
    assert r.data.params["data.source.url"].startswith("http://127.0.0.1:")
    assert int(r.data.params["data.source.bytes"]) > 0 and r.data.params["data.source.fetched_at"]
    assert [m.step for m in c.get_metric_history(r.info.run_id, "train_loss")] == sorted(
        m.step for m in c.get_metric_history(r.info.run_id, "train_loss"))
    assert len(c.get_metric_history(r.info.run_id, "val_accuracy")) == 2
    assert c.get_metric_history(r.info.run_id, "grad_norm")
    assert "test_accuracy" in r.data.metrics and "test_roc_auc" in r.data.metrics
    artifacts = {a.path for a in c.list_artifacts(r.info.run_id, "outputs")}
    assert {"outputs/model.pt", "outputs/vocab.txt", "outputs/history.csv"} <= artifacts
    assert {a.path for a in c.list_artifacts(r.info.run_id, "plots")} == {
        "plots/learning_curves.png", "plots/time_to_quality.png", "plots/confusion.png"}
    # The logged model is registered and points back to this run.
    versions = c.search_model_versions("name='sentiment-lstm'")
    assert [v.run_id for v in versions] == [r.info.run_id]
    # The data it read and was measured on, as MLflow datasets with the prepared data's
    # content digest and the URL the archive came from.
    inputs = {(d.dataset.name, next(t.value for t in d.tags if t.key == "mlflow.data.context"))
              for d in r.inputs.dataset_inputs}
    assert inputs == {("imdb-train", "training"), ("imdb-val", "validation"),
                      ("imdb-test", "test")}
    sources = {json.loads(d.dataset.source)["url"] for d in r.inputs.dataset_inputs}
    assert sources == {r.data.params["data.source.url"]}
    # A model card on the registered version, from the evaluation.
    metrics = json.loads((repo / "metrics/sentiment.json").read_text())
    baseline = json.loads((repo / "metrics/baseline.json").read_text())
    card = versions[0].description
    assert card.startswith("# sentiment-lstm") and "## Intended use" in card
    assert f"| test accuracy | {metrics['test_accuracy']:.4f} |" in card
    assert f"{baseline['test_accuracy']:.4f}" in card
    assert versions[0].tags["test_accuracy"] == f"{metrics['test_accuracy']:.4f}"
    # The champion decision, on the evidence of the whole validation reviews against the
    # baseline on the same reviews.
    tags = versions[0].tags
    assert tags["eval_metric"] == "val_accuracy"
    assert float(tags["eval_value"]) == metrics["val_accuracy"]
    assert tags["eval_data_digest"] == baseline["val_data_digest"]
    assert float(tags["baseline_value"]) == baseline["val_accuracy"]
    beats = (metrics["val_accuracy"], -metrics["val_loss"]) > (baseline["val_accuracy"],
                                                               -baseline["val_loss"])
    assert tags["champion_decision"].startswith("promoted" if beats else "not promoted")
    assert len(versions[0].tags["data_digest"]) == 64
    assert "model_card.md" in {a.path for a in c.list_artifacts(r.info.run_id)}
    # The test figures are linked to the logged model and the test dataset.
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    [model] = mlflow.search_logged_models(experiment_ids=[r.info.experiment_id],
                                          filter_string=f"source_run_id = '{r.info.run_id}'",
                                          output_format="list")
    linked = {m.key: m.dataset_name for m in model.metrics}
    assert linked["test_accuracy"] == "imdb-test" and linked["final_val_accuracy"] == "imdb-val"


def test_pretraining_reads_only_training_reviews_and_is_tracked(repo):
    c, r = only_run(repo, "pretrain", "pretrain")
    import pandas as pd
    table = pd.read_parquet(repo / "data/prepared/imdb/reviews.parquet")
    read = table[table["split"].isin(["train", "unsup"])]
    assert (table["split"] == "unsup").sum() == N_UNLABELLED
    # Every training and unlabelled review whole, and nothing else (no validation or
    # test text).
    assert r.data.metrics["train_words"] == int(read["n_tokens"].sum())
    assert r.data.metrics["unlabelled_reviews"] == N_UNLABELLED
    assert r.data.params["pretrain.embedding_window"] == "2"
    assert r.data.params["sentiment.embed_dim"] == "16"
    assert {d.dataset.name for d in r.inputs.dataset_inputs} == {"imdb-train", "imdb-unsup"}
    # The sentiment run records which encoder it started from.
    _, lstm = only_run(repo, "sentiment", "train_sentiment")
    assert lstm.data.params["sentiment.pretrained"] == "embeddings"
    assert lstm.data.params["pretrained_encoder_sha256"] == sha256_file(
        repo / "data/models/pretrain/encoder.pt")


def test_charlm_run_is_tracked(repo):
    c, r = only_run(repo, "charlm", "train_charlm")
    assert r.data.params["charlm.steps"] == "40"
    assert len(c.get_metric_history(r.info.run_id, "val_loss")) == 2
    assert "final_val_bpc" in r.data.metrics and "final_val_windowed_loss" in r.data.metrics
    assert "final_val_loss_dynamic" in r.data.metrics
    # Quality against time: a metric at each evaluation, a table and a plot.
    walls = [m.value for m in c.get_metric_history(r.info.run_id, "wall_seconds")]
    assert len(walls) == 2 and walls == sorted(walls)
    import pandas as pd
    curve = pd.read_csv(repo / "plots/charlm/time_to_quality.csv")
    assert list(curve.columns) == ["step", "seconds", "val_loss"] and len(curve) == 2
    assert "plots/time_to_quality.png" in {a.path for a in c.list_artifacts(r.info.run_id,
                                                                             "plots")}
    samples = {a.path for a in c.list_artifacts(r.info.run_id, "samples")}
    assert samples == {f"samples/temperature_{t}.txt" for t in (0.5, 1.0, 2.0)}
    assert {d.dataset.name for d in r.inputs.dataset_inputs} == {"gutenberg-train",
                                                                 "gutenberg-val"}
    [version] = c.search_model_versions("name='charlm-lstm'")
    metrics = json.loads((repo / "metrics/charlm.json").read_text())
    assert f"| held-out loss (nats/char) | {metrics['val_loss']:.4f} |" in version.description


def test_baseline_is_tracked_beside_the_lstm(repo):
    metrics = json.loads((repo / "metrics/baseline.json").read_text())
    # The fixture reviews carry their sentiment in plain words: the linear model finds it.
    assert metrics["test_accuracy"] > 0.8 and metrics["test_reviews"] == 2 * 60
    assert metrics["best_C"] in (1, 3, 10, 30, 100)
    c, r = only_run(repo, "sentiment", "train_baseline")
    assert r.data.tags["mlflow.runName"] == "tfidf-logreg-seed1"
    # One nested run per C, each with its validation accuracy.
    children = c.search_runs([r.info.experiment_id],
                             f"tags.`mlflow.parentRunId` = '{r.info.run_id}'")
    assert sorted(float(ch.data.params["baseline.C"]) for ch in children) == [1, 3, 10, 30, 100]
    assert max(ch.data.metrics["val_accuracy"] for ch in children) == pytest.approx(
        metrics["val_accuracy"])
    assert r.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert "final_val_accuracy" in r.data.metrics and r.data.params["baseline.ngram_max"] == "2"
    assert len(c.get_metric_history(r.info.run_id, "search_val_accuracy")) == 5
    assert {"outputs/model.pkl", "outputs/top_features.csv"} <= {
        a.path for a in c.list_artifacts(r.info.run_id, "outputs")}
    # The saved pipeline takes raw token strings and scores them.
    import pickle
    with open(repo / "data/models/baseline/model.pkl", "rb") as f:
        model = pickle.load(f)
    good, bad = model.predict_proba(["great wonderful film", "awful boring film"])[:, 1]
    assert good > bad


def test_baseline_is_a_registered_model_that_reads_raw_text(repo):
    """Served from the registry like the LSTM: raw review text in, and on the raw test
    reviews it scores exactly the accuracy the stage measured on the prepared ones."""
    import mlflow
    import pandas as pd
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/sentiment-tfidf@champion")
    raw = pd.read_parquet(repo / "data/raw/imdb/reviews.parquet")
    test = raw[raw["split"] == "test"]
    predicted = model.predict(pd.DataFrame({"text": test["text"]}))
    accuracy = float((predicted == test["label"].to_numpy()).mean())
    metrics = json.loads((repo / "metrics/baseline.json").read_text())
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    requirements = model.metadata.get_model_info()  # logged with pinned requirements
    assert requirements.flavors["python_function"]["loader_module"] == "mlflow.sklearn"


def test_weights_load_safely(repo):
    state = torch.load(repo / "data/models/sentiment/model.pt", weights_only=True)
    assert "embedding.weight" in state and "lstm.weight_hh_l0" in state


def predictions(stdout: str) -> list[list[str]]:
    """`predict`'s rows under its header: label, probability of the label, review[, note]."""
    header, *rows = stdout.strip().splitlines()
    assert header == "label\tp(label)\treview", stdout
    return [row.split("\t") for row in rows]


def test_predict_and_generate(repo):
    rows = predictions(run(["python", "-m", "pipeline", "predict", "a great film", "awful"],
                           repo).stdout)
    assert [r[2] for r in rows] == ["a great film", "awful"]
    assert all(r[0] in ("positive", "negative") and 0.5 <= float(r[1]) <= 1 for r in rows)
    piped = run(["python", "-m", "pipeline", "predict"], repo,
                input="loved it, wonderful :)\n\nterrible, boring\n").stdout
    gen = ["python", "-m", "pipeline", "generate", "--prime", "The", "--length", "30", "--seed", "3"]
    a, b = run(gen, repo).stdout, run(gen, repo).stdout
    assert a == b and a.startswith("The") and len(a.rstrip("\n")) == 33
    c = run(gen[:-1] + ["4"], repo).stdout
    assert c != a
    assert len(predictions(piped)) == 2


def test_missing_outputs_give_clear_error(repo, tmp_path):
    proc = run(["python", "-m", "pipeline", "generate", "--model-dir", str(tmp_path / "none")],
               repo, check=False)
    assert proc.returncode != 0
    assert "train_charlm" in proc.stderr and "Traceback" not in proc.stderr
    wrong = run(["python", "-m", "pipeline", "generate", "--model-dir", "data/models/sentiment"],
                repo, check=False)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert "holds the sentiment classifier" in wrong.stderr and "not the char LM" in wrong.stderr


def test_predict_reads_any_bytes_and_says_when_it_saw_no_word(repo, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"fine film, great\n" + "Un film magn\u00edfico, great\n".encode("latin-1")
                       + b"\xff\xfe\x00 junk great\n")
    proc = run(["python", "-m", "pipeline", "predict", "--file", str(latin1)], repo)
    rows = predictions(proc.stdout)
    assert len(rows) == 3 and all(r[0] in ("positive", "negative") for r in rows), proc.stdout
    assert "2 line(s) with bytes that are not UTF-8 (line 2, 3)" in proc.stderr, proc.stderr
    piped = subprocess.run([sys.executable, "-m", "pipeline", "predict"], cwd=repo,
                           input=b"caf\xe9 great film\n", capture_output=True, env=env())
    assert piped.returncode == 0 and b"Traceback" not in piped.stderr, piped.stderr
    assert b"stdin: 1 line(s) with bytes that are not UTF-8 (line 1)" in piped.stderr
    mixed = predictions(run(["python", "-m", "pipeline", "predict", "", "zzxq qqvv", "great"],
                            repo).stdout)
    assert [r[:2] for r in mixed[:2]] == [["none", "-"]] * 2 and mixed[2][0] != "none"
    assert all("no label: no word the model knows" in r[3] for r in mixed[:2]), mixed
    alone = run(["python", "-m", "pipeline", "predict", "zzxq qqvv"], repo, check=False)
    assert alone.returncode == 1 and "no review had a word the model knows" in alone.stderr


def test_generate_refuses_an_empty_prime_in_one_line(repo):
    proc = run(["python", "-m", "pipeline", "generate", "--prime", ""], repo, check=False)
    assert proc.returncode == 2 and "--prime" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_evaluate_charlm_samples_with_the_params_it_is_given(repo, tmp_path):
    """`--params X` decides the samples (the `samples` block), not the trained model's
    own files; the default params then give back exactly the files DVC recorded."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["samples"].update(prime="the", length=25, temperatures=[0.7])
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(params, sort_keys=False))
    samples = repo / "data/eval/charlm/samples.txt"
    before = samples.read_bytes()
    try:
        run(["python", "-m", "pipeline", "evaluate-charlm", "--params", str(other)], repo)
        text = samples.read_text()
        assert text.count("=== temperature") == 1 and "=== temperature 0.7 " in text
        assert text.splitlines()[1].startswith("the")
    finally:
        run(["python", "-m", "pipeline", "evaluate-charlm"], repo)
    assert samples.read_bytes() == before


def test_second_repro_runs_nothing(repo):
    proc = run(["dvc", "repro"], repo)
    assert stages_run(proc.stdout) == []
    assert "up to date" in run(["dvc", "status"], repo).stdout.lower()


def changed_stages(repo) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}"))


# A module of each family, and shared ones: editing it re-runs exactly its importers.
EDITED_MODULES = {
    "pipeline/sentiment/model.py": {"train_sentiment", "evaluate_sentiment"},
    "pipeline/charlm/model.py": {"train_charlm", "evaluate_charlm"},
    "pipeline/sentiment/text.py": None, "pipeline/acquire/mirrors.py": None,
    "pipeline/training/loop.py": None, "pipeline/stages/evaluate_charlm.py": None,
}


@pytest.mark.parametrize("module", sorted(EDITED_MODULES))
def test_editing_a_module_changes_exactly_the_stages_that_import_it(repo, module):
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    expected = {name for name, stage in stages.items()
                if module in closure(stage_module(stage["cmd"]))}
    assert expected  # each of these modules is run by some stage
    if EDITED_MODULES[module] is not None:  # one family's model: that family's stages only
        assert expected == EDITED_MODULES[module]
    path = repo / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        assert changed_stages(repo) == expected
    finally:
        path.write_bytes(original)
    assert changed_stages(repo) == set()


@pytest.mark.parametrize("key, value, expected", [
    (("samples", "prime"), "Captain", {"evaluate_charlm"}),   # sampling is not training
    (("dynamic_eval", "tune_chars"), 1000, {"evaluate_charlm"}),  # nor is scoring
    (("train", "checkpoint_every"), 3, set()),                # changes no result
    (("train", "num_threads"), 1, set()),
    (("imdb", "url"), "file:///elsewhere/aclImdb_v1.tar.gz", set()),  # where, not what
    (("imdb", "sha256"), "0" * 64, {"acquire_imdb"}),         # what: the data's identity
])
def test_only_params_that_change_results_are_dependencies(repo, key, value, expected):
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params[key[0]][key[1]] = value
    try:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert changed_stages(repo) == expected
    finally:
        (repo / "params.yaml").write_text(original)


@pytest.fixture
def repo_copy(repo, tmp_path):
    """A copy of the module's repository (git, DVC cache, MLflow store) for a test that
    changes it, so no other test sees the change."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    return copy


def test_sentiment_param_reruns_only_sentiment(repo_copy):
    repo = repo_copy
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["sentiment"]["lr"] /= 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run(["dvc", "repro"], repo)
    assert stages_run(proc.stdout) == ["train_sentiment", "evaluate_sentiment"]
    diff = run(["dvc", "params", "diff", "--json"], repo).stdout
    assert "sentiment.lr" in diff
    _, runs = stage_runs(repo, "sentiment", "train_sentiment")
    assert len(runs) == 2


def test_queued_experiments_log_to_the_repo_store(repo_copy):
    """`dvc exp run --queue` runs in temporary copies under .dvc/tmp/exps; their MLflow
    runs must land in the repository's own mlflow.db, not in the vanishing copy."""
    repo = repo_copy
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "state before experiments"], repo)
    c = client(repo)
    exp_id = c.get_experiment_by_name("sentiment").experiment_id
    before = len(c.search_runs([exp_id]))
    for lr in ("0.003", "0.004"):
        run(["dvc", "exp", "run", "--queue", "-S", f"sentiment.lr={lr}"], repo)
    run(["dvc", "exp", "run", "--run-all"], repo, timeout=900)
    runs = c.search_runs([exp_id])
    assert len(runs) == before + 2
    queued = [r for r in runs if "dvc_experiment" in r.data.tags]
    assert sorted(r.data.params["sentiment.lr"] for r in queued) == ["0.003", "0.004"]
    # The params DVC changed are the run's params, not dirt; the baseline commit and the
    # digests say what made each run.
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert {r.data.tags["git_dirty"] for r in queued} == {"false"}
    assert {r.data.tags["dvc_baseline_rev"] for r in queued} == {head}
    assert len({r.data.tags["params_digest"] for r in queued}) == 2
    assert len({r.data.tags["deps_digest"] for r in queued}) == 1
    assert all("test_accuracy" in r.data.metrics for r in queued)
    # The artifacts are in the repository's store too, not in a deleted temporary copy.
    for r in queued:
        assert c.list_artifacts(r.info.run_id, "outputs")
        assert ".dvc/tmp/exps" not in r.info.artifact_uri
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert "0.003" in shown and "0.004" in shown


def test_a_fresh_clone_fills_an_empty_store(repo_copy, tmp_path):
    """A fresh clone of a commit with its lock, metrics and plots, no DVC cache and no
    MLflow store: `dvc repro` re-runs every stage with an output in DVC's cache, the
    evaluations included, so each training run in the new store has its test figures
    and model card (the UI can compare the LSTM with the baseline)."""
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "results"], repo_copy)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], tmp_path)
    proc = run(["dvc", "repro"], clone, timeout=900)
    assert {"evaluate_sentiment", "evaluate_charlm"} <= set(stages_run(proc.stdout))
    assert run(["dvc", "status"], clone).stdout.strip() == "Data and pipelines are up to date."
    c = client(clone)
    for experiment, stage, figure in (("sentiment", "train_sentiment", "test_accuracy"),
                                      ("sentiment", "train_baseline", "test_accuracy"),
                                      ("charlm", "train_charlm", "final_val_loss")):
        [r] = [r for r in c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
               if r.data.tags.get("dvc_stage") == stage]
        assert figure in r.data.metrics, (stage, sorted(r.data.metrics))
    for experiment in ("sentiment", "charlm"):
        [r] = [r for r in c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
               if r.data.tags.get("dvc_eval_stage")]
        assert "model_card.md" in {a.path for a in c.list_artifacts(r.info.run_id)}
