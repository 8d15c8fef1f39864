#!/usr/bin/env python3
"""PgQueuer on the same PostgreSQL as `taskyard-bench`, for the README's side-by-side table.

Measures what the Taskyard bench measures, the PgQueuer way (asyncpg, one worker process):
  - drain: N jobs enqueued in batches of 1000, then one QueueManager drains them (a no-op entrypoint);
    jobs/s of the drain alone and of enqueue + drain;
  - one-by-one enqueue: M single-job enqueues from 32 concurrent connections, jobs/s;
  - idle pick-up: a job enqueued while the worker waits; enqueue → entrypoint start, p50/p99.
Medians of --runs. Nothing of PgQueuer is part of Taskyard: install it into a scratch virtualenv:

  python3 -m venv /tmp/pgq && /tmp/pgq/bin/pip install pgqueuer==1.6.0 asyncpg
  /tmp/pgq/bin/python bench/pgqueuer_bench.py --dsn postgresql://postgres@127.0.0.1:5432/pgqueuer
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, QueueManager, Queries
from pgqueuer.types import QueueExecutionMode


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * fraction))]


async def reinstall(dsn):
    connection = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(connection))
    try:
        await queries.uninstall()
    except Exception:
        pass
    await queries.install()
    await connection.close()


async def drain(dsn, jobs, batch_size, worker_batch):
    await reinstall(dsn)
    connection = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(connection))
    started = time.perf_counter()
    for start in range(0, jobs, batch_size):
        count = min(batch_size, jobs - start)
        await queries.enqueue(["noop"] * count, [None] * count, [0] * count)
    enqueued = time.perf_counter()
    await connection.close()

    worker = await asyncpg.connect(dsn)
    manager = QueueManager(Queries(AsyncpgDriver(worker)))
    done = 0

    @manager.entrypoint("noop")
    async def noop(job):
        nonlocal done
        done += 1

    await manager.run(mode=QueueExecutionMode.drain, batch_size=worker_batch,
                      dequeue_timeout=timedelta(seconds=1))
    finished = time.perf_counter()
    await worker.close()
    if done != jobs:
        raise SystemExit(f"drained {done} of {jobs} jobs")
    return {"enqueue_per_second": jobs / (enqueued - started),
            "drain_per_second": jobs / (finished - enqueued),
            "enqueue_and_drain_per_second": jobs / (finished - started)}


async def single_enqueue(dsn, jobs, clients):
    await reinstall(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    queries = Queries(AsyncpgPoolDriver(pool))
    await queries.enqueue("noop", None)  # prepare
    remaining = jobs

    async def client():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await queries.enqueue("noop", None)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return {"enqueue_per_second": jobs / elapsed}


async def idle_pickup(dsn, samples):
    await reinstall(dsn)
    worker = await asyncpg.connect(dsn)
    manager = QueueManager(Queries(AsyncpgDriver(worker)))
    started_at = {}
    arrived = asyncio.Event()

    @manager.entrypoint("noop")
    async def noop(job):
        started_at[job.id] = time.perf_counter()
        arrived.set()

    running = asyncio.create_task(manager.run(batch_size=10, dequeue_timeout=timedelta(seconds=30)))
    submitter = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(submitter))
    await asyncio.sleep(1)
    latencies = []
    for _ in range(samples):
        arrived.clear()
        sent = time.perf_counter()
        [job_id] = await queries.enqueue("noop", None)
        await asyncio.wait_for(arrived.wait(), 10)
        latencies.append((started_at[job_id] - sent) * 1000)
        await asyncio.sleep(0.005)
    manager.shutdown.set()
    await running
    await submitter.close()
    await worker.close()
    return {"p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="PostgreSQL to use (its pgqueuer tables are dropped and made anew)")
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per drain run")
    parser.add_argument("--single-jobs", type=int, default=10000, help="jobs per one-by-one enqueue run")
    parser.add_argument("--clients", type=int, default=32, help="concurrent one-by-one enqueuers")
    parser.add_argument("--worker-batch", type=int, default=100, help="the worker's dequeue batch size")
    parser.add_argument("--samples", type=int, default=200, help="idle pick-up samples per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    arguments = parser.parse_args()

    runs = []
    for run in range(arguments.runs):
        result = {
            "drain": await drain(arguments.dsn, arguments.jobs, 1000, arguments.worker_batch),
            "single": await single_enqueue(arguments.dsn, arguments.single_jobs, arguments.clients),
            "pickup": await idle_pickup(arguments.dsn, arguments.samples),
        }
        runs.append(result)
        print(f"run {run + 1}/{arguments.runs}: {json.dumps(result)}", file=sys.stderr)

    def median(section, key):
        return statistics.median(run[section][key] for run in runs)

    summary = {
        "drain_per_second": median("drain", "drain_per_second"),
        "enqueue_and_drain_per_second": median("drain", "enqueue_and_drain_per_second"),
        "bulk_enqueue_per_second": median("drain", "enqueue_per_second"),
        "single_enqueue_per_second": median("single", "enqueue_per_second"),
        "pickup_p50_ms": median("pickup", "p50_ms"),
        "pickup_p99_ms": median("pickup", "p99_ms"),
        "runs": runs,
    }
    if arguments.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"PgQueuer, medians of {arguments.runs} runs")
        print(f"drain ({arguments.jobs} jobs, 1 worker, batch {arguments.worker_batch})  {summary['drain_per_second']:,.0f} jobs/s")
        print(f"enqueue in batches of 1000 + drain            {summary['enqueue_and_drain_per_second']:,.0f} jobs/s")
        print(f"one-by-one enqueue, {arguments.clients} clients              {summary['single_enqueue_per_second']:,.0f} jobs/s")
        print(f"idle pick-up, enqueue → entrypoint start      p50 {summary['pickup_p50_ms']:.1f} ms · p99 {summary['pickup_p99_ms']:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
