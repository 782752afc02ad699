"""CPU fan-out over a ``concurrent.futures.Executor``: a local process pool by default, a Dask cluster's executor when
the user passes a scheduler address, or this process (``max_workers=0``). Nothing home-made for scheduling.

Used by the radiomics extraction (:mod:`medssl_monai.radiomics.extract`) and the CT slice reduction
(:mod:`medssl_monai.reduction.run`): one task per case or volume, results collected as they finish, a failed task
reported with its error while the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

__all__ = ["describe_error", "map_unordered", "open_executor"]


@contextmanager
def open_executor(
    executor: Executor | None,
    max_workers: int | None,
    scheduler_address: str | None,
    tasks: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Executor | None]:
    """The executor to map ``tasks`` tasks over, closing what this function opened; ``None`` means "run the tasks in
    this process, one after the other".

    Args:
        executor: any ``concurrent.futures.Executor``, used as it is and left open.
        max_workers: size of the local ``ProcessPoolExecutor`` opened when neither ``executor`` nor
            ``scheduler_address`` is given (default: CPU count, at most one per task); 0 yields None (in-process).
        scheduler_address: address of a Dask scheduler (``tcp://host:8786``): a ``distributed.Client`` is opened on it
            and its ``get_executor()`` yielded; the client is closed after. Needs the ``dask`` extra (``distributed``).
        tasks: number of tasks, to size the local pool.
        initializer: run once in each local worker process (e.g. one ITK thread per process); not used for a given
            executor or a Dask cluster.
    """
    if executor is not None:
        yield executor
    elif scheduler_address:
        from distributed import Client

        client = Client(scheduler_address)
        try:
            yield client.get_executor()
        finally:
            client.close()
    elif max_workers == 0:
        yield None
    else:
        workers = max_workers or max(1, min(os.cpu_count() or 1, tasks))
        pool = ProcessPoolExecutor(max_workers=workers, initializer=initializer)
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def map_unordered(
    fn: Callable[..., Any], tasks: Sequence[tuple], executor: Executor | None
) -> Iterator[tuple[int, Any, BaseException | None]]:
    """Run ``fn(*task)`` for every task; yield ``(index, result, None)`` or ``(index, None, error)`` as each finishes.

    ``executor`` None runs the tasks here, in order. With an executor, every task is submitted at once and results come
    in completion order; an error raised by ``fn`` or by the executor (a crashed worker, a pickling error) fails that
    task only. If the caller stops early or is interrupted, the tasks not yet started are cancelled.
    """
    if executor is None:
        for index, task in enumerate(tasks):
            try:
                result = fn(*task)
            except Exception as err:  # noqa: BLE001 - one task's failure is reported, the others go on
                yield index, None, err
            else:
                yield index, result, None
        return
    futures = {executor.submit(fn, *task): index for index, task in enumerate(tasks)}
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001 - a crashed worker, a pickling error ...
                yield futures[future], None, err
            else:
                yield futures[future], result, None
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def describe_error(err: BaseException) -> str:
    """``"ErrorType: message"`` on one line (``"ErrorType"`` for an empty message), for error tables and logs."""
    text = str(err).strip().replace("\n", " ")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
