"""The commands the README and docs/ tell a user to run, one line of a bash block each.

Every one of them is accounted for: run here, on the fixture data, and checked for its
effect; or run by the test named beside it; or not run, for the reason given (hours of
training, a GPU, a cloud account). A command added to the docs without a place in these
lists fails `test_every_documented_command_is_accounted_for`.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.repo import make_repo, run

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Run by test_the_documented_commands_do_what_they_say, in this order.
RUN_HERE = [
    'python -m pipeline predict "A moving, beautifully shot film :)" '
    '"Two hours I will never get back."',
    "python -m pipeline predict --file reviews.txt",
    'python -m pipeline generate --prime "The island" --length 500 --temperature 0.8',
    "python -m pipeline generate --scale-factor 2.0 --top-k 5 --seed 7",
    "dvc plots show",
    "python -m pipeline recipe recipes/book-sentiment.yaml",
    "python -m pipeline compare",
    "dvc metrics diff; dvc params diff",
    "git checkout HEAD -- params.yaml dvc.lock metrics plots",
    "dvc checkout --force",
]

# Run by another test: as written, or what the make target runs, or with values that
# fit the test machine (two DDP processes, a local server and remote).
ELSEWHERE = {
    "make setup": "tests/test_docs.py::test_make_test_sets_up_first",
    "make smoke":
        "tests/test_smoke.py::test_smoke_run_is_a_tracked_experiment_that_leaves_the_workspace_alone",
    "dvc exp run --queue -S 'sentiment.lr=0.001,0.002,0.004'":
        "tests/test_sweep.py::test_two_workers_sweep_loses_nothing",
    "dvc queue start -j 2": "tests/test_sweep.py::test_two_workers_sweep_loses_nothing",
    "dvc exp run -S train.nproc=4": "tests/test_distributed.py::test_two_processes_match_one",
    "mlflow models serve -m models:/sentiment-lstm@champion --env-manager local "
    "--host 127.0.0.1 --port 5001":
        "tests/test_team.py::test_registered_models_serve",
    "curl -s -X POST http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' "
    "-d '{\"dataframe_records\": [{\"text\": \"A wonderful film, I loved it\"}, {\"text\": "
    "\"Dull and far too long.\"}]}'": "tests/test_team.py::test_registered_models_serve",
    "mlflow server --backend-store-uri postgresql://mlflow:PASSWORD@db-host:5432/mlflow "
    "--artifacts-destination /srv/mlflow-artifacts --host 0.0.0.0 --port 5000 --allowed-hosts "
    "mlflow.example.org:5000":
        "tests/test_team.py::test_pipeline_tracks_to_mlflow_server_on_postgres",
    "export MLFLOW_TRACKING_URI=http://mlflow.example.org:5000":
        "tests/test_team.py::test_pipeline_tracks_to_mlflow_server_on_postgres",
    "dvc repro": "tests/test_pipeline.py::test_second_repro_runs_nothing",
    "dvc push": "tests/test_team.py::test_dvc_remote_push_clone_pull",
    ".venv/bin/dvc pull": "tests/test_team.py::test_dvc_remote_push_clone_pull",
}

# Not run by the suite, on purpose.
NOT_RUN = {
    "make repro": "the whole pipeline on the real data: about an hour on 2 cores "
                  "(the fixture-sized `dvc repro` runs in tests/test_pipeline.py)",
    "export MKL_CBWR=AVX2 OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 "
    "ATEN_CPU_CAPABILITY=avx2":
        "settings for the commands after it, whose effect is on another CPU model",
    "bash benchmarks/gpu_check.sh OUT_DIR": "needs an NVIDIA GPU",
    "export MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=...":
        "credentials of a server with authentication, which the test server has not",
    "pip install dvc-s3": "an S3 bucket and account (the remote test uses a local remote)",
    "dvc remote add -d storage s3://my-bucket/rnn-pipeline": "an S3 bucket and account",
    'git add .dvc/config && git commit -m "DVC remote"': "part of the S3 set-up above",
    'git add dvc.lock metrics plots && git commit -m "results" && git push':
        "a git server to push to",
    "git clone ... && cd ... && make setup": "a git server to clone from",
}


def documented_commands() -> dict[str, str]:
    """Each command of the docs' bash blocks (continued lines joined, comments and
    example output dropped) -> the file that documents it."""
    found = {}
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                command = re.sub(r"\s+", " ", command)
                if command and not command.startswith("#"):
                    found[command] = doc.name
    return found


def test_every_documented_command_is_accounted_for():
    documented = documented_commands()
    accounted = {*RUN_HERE, *ELSEWHERE, *NOT_RUN}
    assert not set(documented) - accounted, "documented but neither run nor listed: " \
        f"{sorted(set(documented) - accounted)}"
    assert not accounted - set(documented), "listed but no longer documented: " \
        f"{sorted(accounted - set(documented))}"
    for command, test in ELSEWHERE.items():
        path, name = test.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(), f"{command}: no test {test}"


def test_make_test_sets_up_first():
    """`make setup` is the first thing `make test` (what CI runs) does."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: setup$", makefile, re.M)
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert re.search(r"^smoke: setup\n\t\$\(RUN\) -m pipeline smoke$", makefile, re.M)


@pytest.fixture(scope="module")
def repo(fixture_data, tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("docs") / "repo", fixture_data)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    return repo


def _table(stdout: str) -> list[list[str]]:
    header, *rows = stdout.strip().splitlines()
    return [header.split("\t"), *[row.split("\t") for row in rows]]


@pytest.mark.slow
def test_the_documented_commands_do_what_they_say(repo):
    documented, ran = documented_commands(), []

    def doc(command: str, **kwargs):
        assert command in documented, f"not in the docs as written: {command}"
        ran.append(command)
        return run(["bash", "-c", command], repo, **kwargs)

    # Using the models.
    rows = _table(doc(RUN_HERE[0]).stdout)
    assert rows[0] == ["label", "p(label)", "review"] and len(rows) == 3
    assert all(r[0] in ("positive", "negative") and 0.5 <= float(r[1]) <= 1 for r in rows[1:])
    (repo / "reviews.txt").write_text("a wonderful film\nboring and far too long\n")
    assert len(_table(doc(RUN_HERE[1]).stdout)) == 3
    (repo / "reviews.txt").unlink()
    text = doc(RUN_HERE[2]).stdout.rstrip("\n")
    assert text.startswith("The island") and len(text) == len("The island") + 500
    assert doc(RUN_HERE[3]).stdout.startswith("The island")
    # Looking at results.
    doc(RUN_HERE[4])
    assert (repo / "dvc_plots" / "index.html").stat().st_size > 0
    # A recipe, compared with the committed run in a table that fits 100 columns.
    doc(RUN_HERE[5], timeout=900)
    table = doc(RUN_HERE[6]).stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["experiment", "test_acc", "val_acc", "charlm_val_loss"]
    assert max(len(line) for line in lines) <= 100, table
    rows = re.split(r"\n(?=\S)", table)  # a row and the lines its params wrap onto
    [book] = [row for row in rows if row.startswith("book-sentiment-")]
    assert "sentiment.epochs=10" in book.split() and "sentiment.hidden_size=64" in book.split()
    [committed] = [row for row in rows if row.startswith("workspace")]
    assert "sentiment.epochs=2" in committed.split()
    # dvc exp apply, then the diffs show what changed, then back to the commit.
    name = book.split()[0]
    run(["dvc", "exp", "apply", name], repo)
    diffs = doc(RUN_HERE[7]).stdout
    assert "sentiment.epochs" in diffs and "test_accuracy" in diffs
    _back_to_the_commit(repo, doc)
    # A failed repro: the failed stage's outputs are gone; the same two commands bring
    # them back.
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(re.sub(r"(\n  lr: )\S+", r"\g<1>1.0e+30", params, 1))
    failed = run(["dvc", "repro"], repo, check=False)
    assert failed.returncode != 0 and not (repo / "data/models/sentiment").exists()
    _back_to_the_commit(repo, doc)
    assert ran == RUN_HERE + RUN_HERE[-2:]


def _back_to_the_commit(repo: Path, doc) -> None:
    committed = run(["git", "show", "HEAD:metrics/sentiment.json"], repo).stdout
    doc(RUN_HERE[8])
    doc(RUN_HERE[9])
    assert run(["dvc", "status"], repo).stdout.strip() == "Data and pipelines are up to date."
    assert run(["git", "status", "--porcelain"], repo).stdout == ""
    assert (repo / "metrics/sentiment.json").read_text() == committed
    assert (repo / "data/models/sentiment/model.pt").is_file()
