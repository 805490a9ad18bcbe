"""Reads one large object from a local S3 server (moto_server on loopback) with ranged GETs, through obstore and
through aiobotocore, and the same bytes from a local file, and prints the rates and ratios.

Usage: ``python scripts/bench_s3.py [--mib 200] [--part-mib 8] [--ahead 4]`` (needs ``.[s3,test]``).
The numbers in the README ("Object storage") come from this script; the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.s3server import S3Server


async def _obstore(endpoint: str, bucket: str, key: str, size: int, part: int, ahead: int) -> int:
    from obstore import get_range_async
    from obstore.store import S3Store

    store = S3Store(bucket, endpoint=endpoint, region="us-east-1", client_options={"allow_http": True})
    return await _ranged(lambda start, end: _obstore_range(get_range_async, store, key, start, end), size, part, ahead)


async def _obstore_range(get: Callable[..., Awaitable[object]], store: object, key: str, start: int, end: int) -> int:
    return len(memoryview(await get(store, key, start=start, end=end)))  # type: ignore[arg-type]


async def _aiobotocore(endpoint: str, bucket: str, key: str, size: int, part: int, ahead: int) -> int:
    from aiobotocore.session import get_session  # type: ignore[import-untyped]

    async with get_session().create_client("s3", endpoint_url=endpoint, region_name="us-east-1") as client:
        async def one(start: int, end: int) -> int:
            answer = await client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
            async with answer["Body"] as body:
                return len(await body.read())

        return await _ranged(one, size, part, ahead)


async def _ranged(read: Callable[[int, int], Awaitable[int]], size: int, part: int, ahead: int) -> int:
    """Every range of ``part`` bytes, at most ``ahead`` in flight, consumed in order (as a mapper does)."""
    total, starts = 0, list(range(0, size, part))
    pending: list[asyncio.Task[int]] = []
    for start in starts:
        pending.append(asyncio.ensure_future(read(start, min(start + part, size))))
        if len(pending) >= ahead:
            total += await pending.pop(0)
    for task in pending:
        total += await task
    return total


async def _mapper(endpoint: str, bucket: str, key: str, size: int, part: int, ahead: int) -> int:
    """The mapper's own reader (actors/inputs/s3source.py) with the same part size and read-ahead."""
    from obstore import head_async
    from obstore.store import S3Store

    from actors.core.config import Settings
    from actors.inputs.pin import Pin
    from actors.inputs.s3source import S3Source

    store = S3Store(bucket, endpoint=endpoint, region="us-east-1", client_options={"allow_http": True})
    etag = (await head_async(store, key))["e_tag"] or ""
    settings = Settings(s3_endpoint=endpoint, s3_read_part=part, s3_read_ahead=ahead)
    total = 0
    async for block in S3Source(settings, f"s3://{bucket}/{key}", Pin(size, etag)).blocks(0):
        total += len(block)
    return total


async def _path(root: str, name: str) -> int:
    """The mapper's reader of a file under the data root (actors/inputs/sources.py)."""
    from actors.inputs.sources import PathSource

    total = 0
    async for block in PathSource(root, name).blocks(0):
        total += len(block)
    return total


def _file(path: Path) -> int:
    total = 0
    with open(path, "rb") as file:
        while block := file.read(1024 * 1024):
            total += len(block)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--ahead", type=int, default=4)
    args = parser.parse_args()
    size, part = args.mib * 1024 * 1024, args.part_mib * 1024 * 1024
    data = os.urandom(1024 * 1024) * args.mib
    with tempfile.TemporaryDirectory() as scratch, S3Server(Path(scratch)) as server:
        os.environ.update(server.environment())
        server.put("bench", "big.bin", data)
        path = Path(scratch) / "big.bin"
        path.write_bytes(data)
        del data
        _file(path)  # warm the page cache: the local numbers are the file system's best
        start = time.perf_counter()
        assert asyncio.run(_path(scratch, "big.bin")) == size
        local = time.perf_counter() - start
        print(f"mapper, local file {size / local / 2**20:8.1f} MiB/s  1.0x")
        for name, reader in (("obstore", _obstore), ("aiobotocore", _aiobotocore), ("mapper, s3://", _mapper)):
            best, cpu = float("inf"), float("inf")
            for _ in range(3):
                start, used = time.perf_counter(), time.process_time()
                got = asyncio.run(reader(server.endpoint, "bench", "big.bin", size, part, args.ahead))
                best, cpu = min(best, time.perf_counter() - start), min(cpu, time.process_time() - used)
                assert got == size, (name, got)
            # The client's CPU time (all its threads) tells the libraries apart when the server is the bottleneck.
            print(f"{name:<18} {size / best / 2**20:8.1f} MiB/s  {best / local:5.1f}x the local file's time, "
                  f"client CPU {cpu:.2f} s")


if __name__ == "__main__":
    main()
