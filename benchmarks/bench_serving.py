"""Serving under load: `mlflow models serve` of the champion sentiment model on 127.0.0.1,
driven by several concurrent clients for a bounded number of requests.

The requests mix short, long (~2,000 words) and empty reviews with a few malformed
bodies. Checked as it goes: no 5xx, every malformed body a 4xx with a JSON message, and
the server still answering /ping afterwards. Printed and recorded: throughput and
p50/p99 latency.

    python benchmarks/bench_serving.py                 # 4 clients x 50 requests
    python benchmarks/bench_serving.py --clients 8 --requests 100
Needs a registered model (`dvc repro train_sentiment` against the local mlflow.db) and
the venv's `mlflow` on PATH.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil as bu  # noqa: E402

MALFORMED = [b"{not json", json.dumps({"dataframe_records": [{"review": "no text"}]}).encode()]
WORDS = "great film boring plot acting wonderful awful story the and of".split()


def _post(url: str, body: bytes, timeout: float = 120) -> tuple[int, bytes, float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with opener.open(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    return status, payload, time.perf_counter() - started


def _bodies(n: int, seed: int) -> list[tuple[bytes, bool]]:
    """(body, malformed?) for n requests: every tenth malformed, the rest a batch of
    1-4 reviews of 0 to ~2,000 words."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 10 == 9:
            out.append((MALFORMED[i % len(MALFORMED)], True))
            continue
        texts = [" ".join(rng.choices(WORDS, k=rng.choice([0, 5, 40, 300, 2000])))
                 for _ in range(rng.randint(1, 4))]
        out.append((json.dumps({"dataframe_records": [{"text": t} for t in texts]}).encode(),
                    False))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model_uri: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ.get(
        "MLFLOW_TRACKING_URI", f"sqlite:///{bu.REPO / 'mlflow.db'}"), "NO_PROXY": "127.0.0.1"}
    with open(log, "wb") as out:
        return subprocess.Popen([shutil.which("mlflow") or "mlflow", "models", "serve", "-m",
                                 model_uri, "--env-manager", "local", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=tempfile.gettempdir())


def _wait(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}) before answering")
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"{url}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url}/ping after {timeout:.0f} s")


def main() -> None:
    p = bu.base_parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=50, help="per client")
    p.add_argument("--model", default="models:/sentiment-lstm@champion")
    args = p.parse_args()
    if args.quick:
        args.clients, args.requests = 2, 5
    port, log = _free_port(), Path(tempfile.mkdtemp()) / "serve.log"
    url = f"http://127.0.0.1:{port}"
    proc = _serve(args.model, port, log)
    try:
        _wait(url, proc)
        bodies = _bodies(args.clients * args.requests, args.seed)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda b: (*_post(f"{url}/invocations", b[0]), b[1]),
                                    bodies))
        wall = time.perf_counter() - started
        after = _post(f"{url}/invocations", bodies[0][0])[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    five_xx = [s for s, _, _, _ in results if s >= 500]
    bad_answers = [s for s, payload, _, malformed in results if malformed and not (
        400 <= s < 500 and "message" in json.loads(payload or b"{}"))]
    good = sorted(t for s, _, t, malformed in results if not malformed and s == 200)
    p50, p99 = bu.median(good), good[min(len(good) - 1, int(0.99 * len(good)))]
    desc = f"{args.model}, {args.clients} clients x {args.requests} requests"
    bu.header("serving under load", desc)
    print(bu.table([
        ["requests", len(results)], ["5xx answers", len(five_xx)],
        ["malformed bodies without a 4xx + message", len(bad_answers)],
        ["server answers afterwards", after == 200],
        ["throughput, requests/s", f"{len(results) / wall:.1f}"],
        ["latency p50 / p99, s", f"{p50:.3f} / {p99:.3f}"],
    ], ["measurement", "value"]))
    ok = not (five_xx or bad_answers or after != 200)
    rec = bu.Recorder("serving", args, desc)
    rec.add("requests_per_s", len(results) / wall, "requests/s", requests=len(results), ok=ok)
    rec.add("latency_p50_s", p50, "s", ok=ok)
    rec.add("latency_p99_s", p99, "s", ok=ok)
    rec.finish()
    if not ok:
        raise SystemExit(f"serving failed under load (server log: {log})")


if __name__ == "__main__":
    main()
