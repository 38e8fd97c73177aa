"""Worker threads behind the barcode deadline: reuse, abandonment and a clean stop."""

from __future__ import annotations

import threading

from scanner_drivers.barcodes.workers import WorkerPool


def test_finished_jobs_reuse_one_thread() -> None:
    pool = WorkerPool()
    names: list[int] = []
    for _ in range(5):
        assert pool.run(lambda: names.append(threading.get_ident()), timeout_s=30.0)
    assert len(set(names)) == 1
    pool.stop()


def test_a_job_past_its_deadline_keeps_its_thread_and_the_next_gets_another() -> None:
    pool = WorkerPool()
    gate = threading.Event()
    started = threading.Event()
    idents: list[int] = []

    def stuck() -> None:
        idents.append(threading.get_ident())
        started.set()
        gate.wait(30.0)

    assert pool.run(stuck, timeout_s=0.01) is False
    assert pool.busy == 1
    # On a loaded machine the stuck job may only start after run() gave up waiting for it.
    assert started.wait(30.0)
    assert pool.run(lambda: idents.append(threading.get_ident()), timeout_s=30.0)
    assert len(set(idents)) == 2
    gate.set()
    pool.stop()
    assert pool.busy == 0


def test_a_failing_job_does_not_kill_its_worker() -> None:
    pool = WorkerPool()

    def boom() -> None:
        raise RuntimeError("job failed")

    assert pool.run(boom, timeout_s=30.0)
    assert pool.run(lambda: None, timeout_s=30.0)
    pool.stop()
