"""Object-storage figures (issue 3): push and pull of D1 against S3 on loopback.

The S3 endpoint is moto's server in a process of its own on 127.0.0.1. Baselines run in
the same script against the same server: one boto3 ``put_object`` / ``get_object`` per
file of D1 (sequential, the tool users would write), plain obstore put/get of the same
large bytes, and ``cp -r`` of D1 for the local-directory remote.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from datakeep.backends._s3 import S3Backend

from .common import WORK, Row, clean, cp_r, fresh_keep, generate, paired, publish, table, timed

LARGE = 100 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto's S3 server in its own process (so it does not share our GIL)."""

    def __init__(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".complete")


def bench_s3(results: dict[str, float], server: MotoServer, data: Path) -> None:
    files = files_of(data)
    client = server.client()
    server.bucket("baseline")
    results["boto3_put_per_file_s"] = timed(
        lambda: [
            client.put_object(  # type: ignore[attr-defined]
                Bucket="baseline", Key=str(f.relative_to(data)), Body=f.read_bytes()
            )
            for f in files
        ]
    )
    results["boto3_get_per_file_s"] = timed(
        lambda: [
            client.get_object(  # type: ignore[attr-defined]
                Bucket="baseline", Key=str(f.relative_to(data))
            )["Body"].read()
            for f in files
        ]
    )
    keep = fresh_keep(WORK / "push-keep")
    tree = keep.put_tree(data).digest
    server.bucket("remote")
    keep.add_remote("s3", "s3://remote/d1", server.url)
    results["push_d1_s3_s"] = timed(lambda: keep.push("s3", [tree]))
    results["noop_push_d1_s3_s"] = timed(lambda: keep.push("s3", [tree]))
    keep.close()
    fresh = fresh_keep(WORK / "pull-keep")
    fresh.add_remote("s3", "s3://remote/d1", server.url)
    results["pull_d1_s3_s"] = timed(lambda: fresh.pull("s3", [tree]))
    assert fresh.verify_many().ok
    fresh.close()
    clean(WORK / "push-keep", WORK / "pull-keep")


def bench_large(results: dict[str, float], server: MotoServer) -> None:
    import obstore
    from obstore.store import S3Store

    data = os.urandom(LARGE)
    server.bucket("large")
    plain = S3Store(
        "large", endpoint=server.url, region="us-east-1", client_options={"allow_http": True}
    )
    ours = S3Backend("large", prefix="keep", endpoint=server.url, region="us-east-1")
    results["obstore_put_get_100mib_s"] = timed(
        lambda: (obstore.put(plain, "plain", data), bytes(obstore.get(plain, "plain").bytes()))
    )

    def through_datakeep() -> None:
        with ours.stage() as staged:
            for i in range(0, LARGE, 1 << 20):
                staged.write(data[i : i + (1 << 20)])
            staged.commit("blob")
        with ours.open("blob") as reader:
            while reader.read(1 << 20):
                pass

    results["datakeep_put_get_100mib_s"] = timed(through_datakeep)


def bench_directory(results: dict[str, float], data: Path) -> None:
    copy, remote = WORK / "d1-cp", WORK / "dir-remote"
    keep = fresh_keep(WORK / "dir-keep")
    tree = keep.put_tree(data).digest

    def new_remote() -> None:
        if keep.remotes:
            keep.remove_remote("nas")
        clean(remote)
        keep.add_remote("nas", str(remote))

    results["cp_r_d1_s"], results["push_d1_dir_s"], results["push_d1_dir_s_ratio"] = paired(
        3,
        lambda: cp_r(data, copy),
        lambda: keep.push("nas", [tree]),
        lambda: clean(copy),
        new_remote,
    )
    keep.close()
    clean(copy, WORK / "dir-keep", remote)


def _ratio(
    key: str, base: str, measure: str, limit: float, what: str, at_least: bool = False
) -> Row:
    def check(r: dict[str, float]) -> tuple[str, bool]:
        # a paired measurement carries its own ratio (median of back-to-back rounds)
        ratio = r.get(f"{key}_ratio") or (r[key] / r[base] if not at_least else r[base] / r[key])
        ok = ratio >= limit if at_least else ratio <= limit
        return f"{r[key]:.2f} s = {ratio:.2f}x {what}", ok

    return measure, f"{'>=' if at_least else '<='} {limit}x {what}", check


TARGETS: list[Row] = [
    _ratio("push_d1_s3_s", "boto3_put_per_file_s", "push D1 to S3", 0.3, "one PUT per file"),
    (
        "no-op push of D1",
        "<= 0.3 s",
        lambda r: (f"{r['noop_push_d1_s3_s']:.3f} s", r["noop_push_d1_s3_s"] <= 0.3),
    ),
    _ratio(
        "pull_d1_s3_s",
        "boto3_get_per_file_s",
        "pull D1 into an empty keep, verified",
        0.3,
        "one GET per file",
    ),
    _ratio(
        "datakeep_put_get_100mib_s",
        "obstore_put_get_100mib_s",
        "large object (100 MiB) put + get",
        0.8,
        "plain obstore throughput",
        at_least=True,
    ),
    _ratio("push_d1_dir_s", "cp_r_d1_s", "push D1 to a local-directory remote", 1.2, "cp -r"),
]


def run() -> None:
    data = WORK / "d1"
    generate(data, dirs=100, per_dir=100, size=4096, large=10, seed=1)
    results: dict[str, float] = {}
    server = MotoServer()
    try:
        bench_s3(results, server, data)
        bench_large(results, server)
    finally:
        server.stop()
    bench_directory(results, data)
    r = results
    baselines = (
        f"Baselines in the same run: boto3 one PUT per file {r['boto3_put_per_file_s']:.2f} s, "
        f"one GET per file {r['boto3_get_per_file_s']:.2f} s; plain obstore put+get of "
        f"100 MiB {r['obstore_put_get_100mib_s']:.2f} s; cp -r of D1 {r['cp_r_d1_s']:.2f} s."
    )
    publish("remotes", results, table(TARGETS, results, baselines))
