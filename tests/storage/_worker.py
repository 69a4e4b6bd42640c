"""Body of one OS process in the concurrency test: ``n`` single-token increments.

Usage: ``python _worker.py '<json spec>'``. The process opens the storage, creates the
``ready`` file, waits for the ``go`` file (so both workers really overlap), then runs
and writes its start/end times to the ``done`` file.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from grok2api.storage import TokenUpdate, create_storage


async def run(spec: dict[str, Any]) -> None:
    store = create_storage(
        spec["kind"], spec["url"], Path(spec["data_dir"]), namespace=spec["namespace"], **spec["options"]
    )
    await store.open()
    try:
        Path(spec["ready"]).touch()
        go, deadline = Path(spec["go"]), time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("never got the go signal")
            await asyncio.sleep(0.002)
        started = time.time()
        for _ in range(spec["n"]):
            await store.update_tokens([TokenUpdate(token=spec["token"], incr={"use_count": 1, "quota": -1})])
        Path(spec["done"]).write_text(json.dumps({"start": started, "end": time.time()}))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(run(json.loads(sys.argv[1])))
