"""Load check for ``medzoo serve``: throughput with many concurrent clients vs one client at a time.

Starts ``medzoo serve`` on loopback (a random-weight model from the ``tiny`` recipe unless ``--model`` is
given), sends the same image question sequentially and then from ``--clients`` concurrent clients, and prints
requests/s for both and their ratio. Bounded: a fixed number of requests per phase and a time limit.

    .venv/bin/python benchmarks/serve_load.py [--clients 32] [--requests-per-client 8] [--sequential 24]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from medzoo.app.serving.background import free_port

MODEL_NAME = "tiny-load"


def build_tiny_model(directory: Path) -> Path:
    """Random weights in the architecture of the ``tiny`` recipe (throughput does not need training)."""
    import torch

    from medzoo.core.model.build import build_model
    from medzoo.core.recipes.loading import load_recipe

    torch.manual_seed(0)
    build_model(load_recipe("tiny").config.model).save_pretrained(str(directory))
    return directory


def request_body(max_tokens: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 40, 60)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What does the image show?"}]
    return {"model": MODEL_NAME, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}


class Server:
    """``medzoo serve`` in a subprocess on a free loopback port."""

    def __init__(self, model: Path, threads: int, window_ms: float, max_batch: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "medzoo.app.cli", "serve", str(model), "--port", str(self.port),
                   "--model-name", MODEL_NAME, "--batch-window-ms", str(window_ms), "--max-batch-size",
                   str(max_batch), "--threads", str(threads)]
        with log.open("w") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"medzoo serve exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit("medzoo serve did not start in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def run_phase(url: str, body: dict, clients: int, per_client: int, time_limit: float) -> dict:
    """``clients`` workers each send ``per_client`` requests back to back; returns counts and timings."""
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=time_limit, limits=limits) as client:

        async def worker() -> None:
            nonlocal failures
            for _ in range(per_client):
                if time.monotonic() > deadline:
                    return
                start = time.monotonic()
                response = await client.post("/v1/chat/completions", json=body)
                if response.status_code == 200 and response.json()["choices"][0]["finish_reason"]:
                    latencies.append(time.monotonic() - start)
                else:
                    failures += 1

        start = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(clients))), timeout=time_limit + 30)
        elapsed = time.monotonic() - start
    return {"clients": clients, "requests": len(latencies), "failures": failures, "seconds": round(elapsed, 3),
            "requests_per_s": round(len(latencies) / elapsed, 3),
            "median_latency_s": round(statistics.median(latencies), 3) if latencies else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="medzoo model directory (default: random tiny)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=24, help="requests sent one at a time")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    parser.add_argument("--window-ms", type=float, default=10.0)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=180.0, help="seconds per phase")
    parser.add_argument("--target", type=float, default=4.0, help="speed-up the check expects")
    parser.add_argument("--check", action="store_true", help="exit 1 when the speed-up misses the target")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="medzoo-load-") as scratch:
        model = args.model or build_tiny_model(Path(scratch) / "tiny")
        server = Server(model, args.threads, args.window_ms, args.max_batch, Path(scratch) / "serve.log")
        try:
            server.wait_ready()
            body = request_body(args.max_tokens)
            asyncio.run(run_phase(server.url, body, 1, 2, args.time_limit))  # warm-up
            sequential = asyncio.run(run_phase(server.url, body, 1, args.sequential, args.time_limit))
            concurrent = asyncio.run(
                run_phase(server.url, body, args.clients, args.requests_per_client, args.time_limit)
            )
            sizes = httpx.get(server.url + "/health", timeout=10).json()["recent_batch_sizes"]
        finally:
            server.stop()
    speedup = concurrent["requests_per_s"] / sequential["requests_per_s"] if sequential["requests_per_s"] else 0.0
    report = {"sequential": sequential, "concurrent": concurrent, "speedup": round(speedup, 2),
              "recent_batch_sizes": sizes, "max_tokens": args.max_tokens, "target": args.target}
    print(f"sequential (1 client):   {sequential['requests']} requests in {sequential['seconds']} s = "
          f"{sequential['requests_per_s']} req/s")
    print(f"concurrent ({args.clients} clients): {concurrent['requests']} requests in {concurrent['seconds']} s = "
          f"{concurrent['requests_per_s']} req/s")
    print(f"speed-up: {speedup:.2f}x (target >= {args.target}x: {'met' if speedup >= args.target else 'MISSED'})")
    print(json.dumps(report))
    failed = sequential["failures"] or concurrent["failures"]
    return 1 if args.check and (speedup < args.target or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
