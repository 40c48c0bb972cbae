"""A client for a wasmhive owner (the JSON API), for researchers in Python.

    from wasmhive import Client
    owner = Client("127.0.0.1:7878#PEERID", token="...")   # TLS, the owner's key pinned
    job = owner.submit("task.wasm", inputs=range(0, 1000, 10), quorum=2)
    owner.wait(job)                                         # a tqdm progress bar
    for result in owner.results(job):
        print(result["unit"], result["output_bytes"])

Errors the owner reports are raised as `WasmhiveError`, carrying its HTTP status and
message.
"""

from .client import Client, WasmhiveError

__all__ = ["Client", "WasmhiveError"]
