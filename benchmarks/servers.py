"""Real servers under a bounded load: gunicorn (2 sync workers) with Flask, uvicorn with Starlette.

Each run starts the server with one tool, waits until it answers, warms it up with the
load generator, measures a fixed duration with a fixed number of connections, stops the
server with SIGTERM (as an orchestrator does, so each tool's shutdown flush runs) and
then counts what reached the sinks. The load generator is ``wrk`` when installed, else
a small thread-per-connection Python client (slower: its numbers are not comparable
with wrk's, and the report says which one ran).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

import requests

from .common import BIN, ROOT, child_env, free_port, percentile
from .counting import COUNT_DIR_ENV, read_counts
from .sinks import SinkClient

SERVERS = {"flask": "gunicorn", "starlette": "uvicorn"}
PATH = "/items/1"


def server_argv(framework: str, port: int) -> list[str]:
    if framework == "flask":
        return [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--graceful-timeout",
            "20",
            "--log-level",
            "warning",
            "benchmarks.serve:app",
        ]
    return [
        str(BIN / "uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "benchmarks.serve:app",
    ]


class Server:
    """A server process in its own session, its output in a temporary file."""

    def __init__(
        self, framework: str, tool: str, endpoints: dict[str, Any], count_dir: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives with the server
        env = child_env(
            endpoints, BENCH_FRAMEWORK=framework, BENCH_TOOL=tool, **{COUNT_DIR_ENV: count_dir}
        )
        self.process = subprocess.Popen(
            server_argv(framework, self.port),
            env=env,
            cwd=str(ROOT),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if requests.get(self.url + PATH, timeout=5).status_code == 200:
                    return
                raise RuntimeError(f"server answered badly:\n{self.output()}")
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine: again
                time.sleep(0.1)
        raise TimeoutError(f"server not ready in {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 40) -> float:
        """SIGTERM to the master, as an orchestrator does; returns seconds until it exited."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        return time.monotonic() - started

    def kill(self) -> None:
        """Make sure nothing of it is left (its workers too), and forget its output."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def _micros(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, req/s, p50/p90/p99 (µs), non-2xx and socket errors from ``wrk --latency``."""
    result: dict[str, Any] = {"non_2xx": 0, "socket_errors": 0}
    for quantile in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{quantile}%\s+(\S+)", output, re.MULTILINE)
        if match:
            result[f"p{quantile}_us"] = _micros(match.group(1))
    result["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if match:
        result["non_2xx"] = int(match.group(1))
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if match:
        result["socket_errors"] = sum(int(n) for n in match.groups())
    return result


def run_wrk(url: str, seconds: float, connections: int) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def run_python_load(url: str, seconds: float, connections: int) -> dict[str, Any]:
    """A bounded fallback load generator: ``connections`` threads, keep-alive when allowed."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", PATH)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures[index] += 1
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException):
                failures[index] += 1
                connection.close()
                continue
            latencies[index].append((time.perf_counter() - started) * 1e6)
        connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.perf_counter() - started
    values = sorted(v for per in latencies for v in per)
    return {
        "requests": len(values) + sum(failures),
        "rps": len(values) / elapsed,
        "p50_us": percentile(values, 0.5),
        "p90_us": percentile(values, 0.9),
        "p99_us": percentile(values, 0.99),
        "non_2xx": sum(failures),
        "socket_errors": 0,
    }


def measure(
    framework: str,
    tool: str,
    sink: SinkClient,
    *,
    seconds: float,
    warmup: float,
    connections: int,
) -> dict[str, Any]:
    """One server run with one tool: throughput, latency, and what reached the sink."""
    from .tools import make_tool

    load = run_wrk if have_wrk() else run_python_load
    sink.reset()
    with tempfile.TemporaryDirectory(prefix="bench-count-") as count_dir:
        server = Server(framework, tool, sink.endpoints, count_dir)
        try:
            server.wait_ready()
            url = server.url + PATH
            if warmup > 0:
                load(url, warmup, connections)
            result = load(url, seconds, connections)
            stop_s = server.stop()
        finally:
            server.kill()
        served = read_counts(count_dir)
    stats = sink.settled(quiet=0.3, limit=5.0)
    counter = make_tool(tool, sink.endpoints)
    result.update(
        framework=framework,
        server=SERVERS[framework],
        tool=tool,
        connections=connections,
        seconds=seconds,
        load_generator="wrk" if load is run_wrk else "python",
        stop_s=stop_s,
        unit=counter.unit,
        served=served,  # the runner turns this into "expected" (OTel: times spans per request)
        received=counter.received(stats),
        sink=stats,
    )
    return result
