"""Run a function on 2 ``torch.distributed`` ranks (gloo, CPU) forked from the test process: a fast stand-in for
``torchrun`` in the default suite.

``torchrun --nproc_per_node 2`` starts three fresh interpreters that each import torch and MONAI (tens of seconds
on a shared 2-core box) before a few training steps of a second. Forked ranks inherit the imported modules, so the
same few steps take seconds. Each rank joins a gloo group through a ``FileStore`` (no port to collide on) and gets
the environment ``torchrun`` would give it (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ...), so code that calls
``dist.init_process_group`` only when ``not dist.is_initialized()`` (the bundles' ``multi_gpu.yaml``) runs as under
``torchrun``. What ``torchrun`` itself adds (its launcher, ``env://`` rendezvous) stays covered by the slow tests.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_ranks"]


def _rank_main(fn: Callable[..., Any], rank: int, world_size: int, workdir: Path, args: tuple) -> None:
    code = 1
    payload: dict[str, Any] = {}
    stacks = open(workdir / f"rank{rank}.stacks", "w")  # noqa: SIM115 - open until os._exit
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)  # the test process asks on a hang
    try:
        import torch
        import torch.distributed as dist

        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                          LOCAL_WORLD_SIZE=str(world_size), GROUP_RANK="0", MASTER_ADDR="127.0.0.1",
                          OMP_NUM_THREADS="1")
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{workdir / 'store'}", rank=rank, world_size=world_size)
        payload = {"value": fn(rank, *args)}
        code = 0
    except BaseException:  # noqa: BLE001 - everything goes back to the test process
        payload = {"traceback": traceback.format_exc()}
    finally:
        try:
            (workdir / f"rank{rank}.json").write_text(json.dumps(payload, default=str))
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
        finally:
            os._exit(code)  # never run the test process's atexit hooks or pytest's teardown in a fork


def run_ranks(fn: Callable[..., Any], workdir: str | Path, *args: Any, world_size: int = 2,
              timeout: float = 120.0) -> list[Any]:
    """``[fn(0, *args), fn(1, *args), ...]``, each computed in its own forked rank of a gloo group.

    Args:
        fn: called as ``fn(rank, *args)`` in the rank, with the process group initialised; its return value must be
            JSON-serialisable.
        workdir: an empty folder for the group's store and the ranks' results.
        args: more arguments of ``fn``.
        world_size: number of ranks.
        timeout: seconds for all ranks together; a rank still running then is killed and the test fails (a hang,
            e.g. one rank left waiting in a collective). Once a rank has failed, the others get 10 s more.

    Raises:
        AssertionError: a rank raised (its traceback is in the message), died without a result, or hung.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank_main, args=(fn, r, world_size, workdir, args), daemon=True)
             for r in range(world_size)]
    # a fork copies the test process's garbage; if the child's cyclic GC then finalises an object whose __del__ takes
    # a lock some other thread held at fork time, the rank hangs (seen once: rank 0 stuck "Garbage-collecting" in
    # importlib). Collect first and freeze what is left, as the gc docs advise before fork(): the ranks never
    # collect the parent's objects
    gc.collect()
    gc.freeze()
    try:
        for p in procs:
            p.start()
    finally:
        gc.unfreeze()
    deadline = time.monotonic() + timeout
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        if any(p.exitcode not in (None, 0) for p in procs):  # a failed rank leaves the others waiting on it
            deadline = min(deadline, time.monotonic() + 10)
        time.sleep(0.05)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for r in hung:
        os.kill(procs[r].pid, signal.SIGUSR1)  # where it hangs, into rank<r>.stacks
    if hung:
        time.sleep(2)
    for r in hung:
        procs[r].kill()
        procs[r].join(10)
    results, problems = [], []
    for r, p in enumerate(procs):
        path = workdir / f"rank{r}.json"
        result = json.loads(path.read_text()) if path.is_file() else None
        if r in hung:
            dump = workdir / f"rank{r}.stacks"
            where = dump.read_text()[:4000] if dump.is_file() else ""  # innermost frames first
            problems.append(f"rank {r} still running (a hang?): killed; its threads:\n{where}")
        elif result is None:
            problems.append(f"rank {r} exited with code {p.exitcode} and no result")
        elif "traceback" in result:
            problems.append(f"rank {r} raised:\n{result['traceback']}")
        results.append(None if result is None else result.get("value"))
    assert not problems, "\n".join(problems)
    return results
