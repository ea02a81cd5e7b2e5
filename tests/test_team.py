"""Beyond one machine, for real (slow): an MLflow server on PostgreSQL, an unreachable
tracking server, a DVC remote shared through `git clone`, and the registered models served
over HTTP by `mlflow models serve`.

Needs PostgreSQL (15 on Debian 12); `make test` installs it (tests/require_postgres.sh).
Every server started here listens on 127.0.0.1 only and is stopped at the end; every wait
is bounded.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.core.outputs import sha256_file
from tests.repo import ALL_STAGES, env, make_repo, run, stages_run

pytestmark = pytest.mark.slow

def _pg_bin() -> Path:
    """PostgreSQL's server binaries: Debian 12's 15, else the newest installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: (p.parent.parent.name != "15", -int(p.parent.parent.name)
                                  if p.parent.parent.name.isdigit() else 0))
    return found[0].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
SENTIMENT_STAGES = {"acquire_imdb", "prepare_imdb", "pretrain", "train_sentiment"}


# --------------------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30,
         content_type: str = "application/json") -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers too. No proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail early if `proc` dies, and after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited ({proc.returncode}) before {url} answered:\n"
                        f"{log.read_text(errors='replace')[-4000:]}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n"
                f"{log.read_text(errors='replace')[-4000:]}")


def start_server(args: list[str], log: Path, cwd: Path, extra_env: dict | None = None):
    """A server in its own process group (so `stop_server` gets its workers too)."""
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=cwd, env={**env(), **(extra_env or {})},
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (15 s to shut down), then SIGKILL what is left
    of the group: workers may outlive their parent."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=10)


def as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL 15 on 127.0.0.1; yields the SQLAlchemy URI of database
    `mlflow` (user `mlflow`, trust auth: it is only reachable from this machine)."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL is not installed ({PG_BIN}/initdb missing): "
                    "apt-get install -y postgresql  (make test does it: tests/require_postgres.sh)")
    # Not under pytest's tmp dir: that is private to the user running pytest, and the
    # server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))
    data, port = base / "data", free_port()
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        made = subprocess.run(as_pg_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "mlflow",
                                          "--auth=trust", "--no-locale", "-E", "UTF8",
                                          "--no-sync"]),
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stdout + made.stderr
        # TCP on 127.0.0.1 only; the Unix socket in the temp dir (not /var/run/postgresql).
        options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
        started = subprocess.run(as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                             str(base / "server.log"), "-o", options,
                                             "-w", "-t", "60", "start"]),
                                 capture_output=True, text=True, timeout=90)
        assert started.returncode == 0, (started.stderr,
                                         (base / "server.log").read_text(errors="replace"))
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=port, user="mlflow", dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                       "-w", "-t", "30", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on the PostgreSQL store, proxying artifacts to a local directory.
    Yields (tracking URI, artifact directory)."""
    work = tmp_path_factory.mktemp("mlflow-server")
    artifacts, port = work / "artifacts", free_port()
    artifacts.mkdir()
    log = work / "server.log"
    proc = start_server([MLFLOW, "server", "--backend-store-uri", postgres,
                         "--artifacts-destination", str(artifacts),
                         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                        log, cwd=work,
                        # No background job runner (7 extra processes on a 2-core box):
                        # it serves GenAI jobs, which a training pipeline never submits.
                        extra_env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{uri}/health", proc, log, timeout=120)  # a fresh database migrates first
        yield uri, artifacts
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def server_repo(mlflow_server, fixture_data, tmp_path_factory):
    """The sentiment branch of the pipeline, tracked on the server, starting from word
    vectors (the default)."""
    uri, _ = mlflow_server
    repo = make_repo(tmp_path_factory.mktemp("server") / "repo",
                     {**fixture_data, "sentiment": {"pretrained": "embeddings"}})
    proc = run(["dvc", "repro", "train_sentiment"], repo,
               extra_env={"MLFLOW_TRACKING_URI": uri})
    assert set(stages_run(proc.stdout)) == SENTIMENT_STAGES
    return repo


@pytest.fixture(scope="module")
def local_repo(fixture_data, tmp_path_factory):
    """The whole pipeline with the default store, `sqlite:///<repo>/mlflow.db`."""
    repo = make_repo(tmp_path_factory.mktemp("local") / "repo", fixture_data)
    proc = run(["dvc", "repro"], repo)
    assert set(stages_run(proc.stdout)) == ALL_STAGES
    return repo


# --------------------------------------------------------------------------- tests

def test_pipeline_tracks_to_mlflow_server_on_postgres(server_repo, mlflow_server):
    uri, artifact_dir = mlflow_server
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("sentiment")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    assert r.data.params["sentiment.epochs"] == "2"
    assert r.data.params["seed"] == "1"
    assert r.data.tags["dvc_stage"] == "train_sentiment"
    assert r.data.params["sentiment.pretrained"] == "embeddings"
    # The word vectors' run: in its own experiment, on the server, with its summary.
    [vectors] = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])
    assert vectors.data.tags["dvc_stage"] == "pretrain"
    assert vectors.data.metrics["ppmi_pairs"] > 0
    assert r.data.params["pretrained_encoder_sha256"] == sha256_file(
        server_repo / "data/models/pretrain/encoder.pt")
    assert [a.path for a in client.list_artifacts(vectors.info.run_id, "outputs")] == [
        "outputs/embeddings.json"]
    for metric in ("train_loss", "val_accuracy"):
        history = client.get_metric_history(r.info.run_id, metric)
        assert len(history) == 2, (metric, history)  # one point per epoch
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id, "outputs")}
    assert {"outputs/model.pt", "outputs/vocab.txt"} <= artifacts
    # The artifacts went through the server into its destination, not into the repo.
    assert list(artifact_dir.rglob("model.pt"))
    versions = client.search_model_versions("name='sentiment-lstm'")
    assert [v.run_id for v in versions] == [r.info.run_id]
    # What the evaluate stage finds this run again by: the model's digest.
    assert r.data.tags["model_sha256"] == sha256_file(server_repo / "data/models/sentiment/model.pt")
    assert not (server_repo / "mlflow.db").exists()
    assert not (server_repo / "mlartifacts").exists()


def test_unreachable_tracking_server_fails_fast(server_repo, tmp_path):
    # A copy of the repo as it was after the prepare stages: no trained model yet.
    repo = tmp_path / "repo"
    shutil.copytree(server_repo, repo, symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in ("models", "checkpoints")
                                             and Path(d).name == "data"])
    assert (repo / "data/prepared/imdb").is_dir()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["sentiment"]["pretrained"] = "none"  # the word vectors went with data/models
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    uri = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    start = time.monotonic()
    proc = run(["python", "-m", "pipeline", "train-sentiment"], repo, check=False,
               extra_env={"MLFLOW_TRACKING_URI": uri}, timeout=120)
    elapsed = time.monotonic() - start
    said = f"exit {proc.returncode} after {elapsed:.1f} s\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert proc.returncode != 0, said
    assert elapsed < 60, said
    assert uri in proc.stderr and "not reachable" in proc.stderr, said
    assert "Traceback" not in proc.stderr, said
    models = repo / "data/models"
    assert not models.exists() or not list(models.iterdir()), list(models.iterdir())
    assert not (repo / "mlflow.db").exists()


def test_dvc_remote_push_clone_pull(local_repo, tmp_path):
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], local_repo)
    run(["dvc", "push"], local_repo)
    assert any(p.is_file() for p in remote.rglob("*"))
    # dvc.lock, metrics and plots (cache: false), .gitignores and .dvc/config go to git.
    run(["git", "add", "-A"], local_repo)
    run(["git", "commit", "-qm", "results"], local_repo)
    assert run(["git", "status", "--porcelain"], local_repo).stdout == ""

    run(["git", "clone", "-q", str(local_repo), str(clone)], tmp_path)
    assert "local" in run(["dvc", "remote", "list"], clone).stdout
    assert not (clone / "data/models/sentiment").exists()  # git has only .gitignore there
    run(["dvc", "pull"], clone)
    assert "up to date" in run(["dvc", "status"], clone).stdout.lower()
    assert stages_run(run(["dvc", "repro"], clone).stdout) == []
    for path in ("data/models/sentiment/model.pt", "data/models/charlm/model.pt"):
        assert (clone / path).read_bytes() == (local_repo / path).read_bytes()
    # The MLflow store is not DVC's: a clone has the outputs, not the runs.
    assert not (clone / "mlflow.db").exists()
    # Or in one step, as the README says: `dvc repro --pull` fetches instead of re-running.
    run(["git", "clone", "-q", str(local_repo), str(tmp_path / "clone2")], tmp_path)
    assert stages_run(run(["dvc", "repro", "--pull"], tmp_path / "clone2").stdout) == []


def test_registered_models_serve(local_repo, tmp_path):
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{local_repo / 'mlflow.db'}"}
    # On the tiny fixture data the LSTM may not beat the TF-IDF baseline, and then the
    # rules give it no champion; serving it anyway means setting the alias by hand, as
    # docs/serving.md says.
    client = MlflowClient(store["MLFLOW_TRACKING_URI"])
    [version] = client.search_model_versions("name = 'sentiment-lstm'")
    client.set_registered_model_alias("sentiment-lstm", "champion", version.version)
    # `predict --champion` loads what serving loads.
    out = run([sys.executable, "-m", "pipeline", "predict", "--champion",
               "A wonderful, moving film."], local_repo).stdout
    header, row = out.splitlines()
    assert header.startswith("label\t") and row.split("\t")[0] in ("positive", "negative")
    port, log = free_port(), tmp_path / "serve.log"
    # Run outside the repo: the model must carry its own code.
    proc = start_server([MLFLOW, "models", "serve", "-m", "models:/sentiment-lstm@champion",
                         "--env-manager", "local", "--host", "127.0.0.1",
                         "--port", str(port)], log, cwd=tmp_path, extra_env=store)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/ping", proc, log, timeout=120)
        texts = ["A wonderful, moving film. Brilliant acting, I loved it :)",
                 "Awful. Boring, predictable and far too long, a waste of time :(",
                 "",
                 " ".join(["great", "film", "boring", "the"] * 5000)]  # 20,000 words
        status, body = http("POST", f"{url}/invocations", json.dumps(
            {"dataframe_records": [{"text": t} for t in texts]}).encode(), timeout=60)
        assert status == 200, body[:2000]
        predictions = json.loads(body, parse_constant=pytest.fail)["predictions"]  # no NaN
        assert len(predictions) == len(texts)
        for text, p in zip(texts, predictions):
            if not text:  # no word the model knows: no label, no probability of one
                assert p["label"] == "none" and p["known_words"] == 0, p
                assert p["probability"] is None, p  # JSON null
                continue
            assert 0.0 <= p["p_positive"] <= 1.0
            assert p["label"] == ("positive" if p["p_positive"] >= 0.5 else "negative")
            assert p["probability"] == max(p["p_positive"], 1 - p["p_positive"])
            assert p["cut"] == (p["tokens"] > 4000)
        assert predictions[-1]["cut"] and predictions[-1]["tokens"] == 20000

        # Bad requests get an error answer (MLflow: 400 and a JSON message), not a hang.
        for bad, hint in ((json.dumps({"dataframe_records": [{"review": "no text column"}]})
                           .encode(), "text"), (b"{not json", "JSON")):
            status, body = http("POST", f"{url}/invocations", bad, timeout=30)
            assert 400 <= status < 600, (status, body[:500])
            assert hint in json.loads(body)["message"], body[:500]
    finally:
        stop_server(proc)

    # The char model, loaded the way a user would (in a fresh process: loading a model
    # puts its bundled code first on sys.path).
    code = ("import json, mlflow.pyfunc, pandas as pd\n"
            "m = mlflow.pyfunc.load_model('models:/charlm-lstm@champion')\n"
            "out = m.predict(pd.DataFrame({'prompt': ['The island'], 'length': [30],"
            " 'temperature': [1.0]}))\n"
            "print(json.dumps(list(out['text'])))\n")
    out = run([sys.executable, "-c", code], tmp_path, extra_env=store, timeout=120).stdout
    [text] = json.loads(out.strip().splitlines()[-1])
    assert text.startswith("The island") and len(text) == len("The island") + 30
