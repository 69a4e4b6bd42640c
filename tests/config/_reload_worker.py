"""Helper process for the hot-reload test: watch or change the config through ConfigService.

    python -m config._reload_worker watch KIND URL DATA_DIR NAMESPACE EXPECTED
    python -m config._reload_worker write KIND URL DATA_DIR NAMESPACE VALUE
"""

from __future__ import annotations

import asyncio
import sys
import time

from grok2api.config.service import ConfigService
from grok2api.storage import create_storage


async def main(mode: str, kind: str, url: str, data_dir: str, namespace: str, value: str) -> int:
    storage = create_storage(kind, url, data_dir, namespace=namespace)
    await storage.open()
    try:
        service = ConfigService(storage)
        await service.load()
        if mode == "write":
            await service.update({"app.custom_instruction": value})
            print("written", flush=True)
            return 0
        print("ready", flush=True)
        start = time.monotonic()
        while time.monotonic() - start < 20:
            config = await service.get_fresh()
            if config.app.custom_instruction == value:
                print(f"seen {time.monotonic() - start:.2f}", flush=True)
                return 0
            await asyncio.sleep(0.02)
        print("timeout", flush=True)
        return 1
    finally:
        await storage.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:7])))
