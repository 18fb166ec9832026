#!/usr/bin/env python3
"""A Python worker under `procslot exec`: its slot comes from the environment, and it holds the slot for
as long as this process lives (the lock was inherited across execve).

    procslot exec --file /run/myapp/slots --slots 4 -- python3 worker.py
"""
import json
import os

slot = int(os.environ["PROCSLOT_ID"])
count = int(os.environ["PROCSLOT_COUNT"])
print(json.dumps({"pid": os.getpid(), "slot": slot, "count": count, "shard": f"{slot}/{count}",
                  "file": os.environ["PROCSLOT_FILE"]}), flush=True)
