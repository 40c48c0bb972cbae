"""The owner's JSON API over TLS (the owner's ed25519 key pinned by its peer id) or over
its plain loopback API (`http://127.0.0.1:PORT`, the address in `DATA/dashboard.address`).

Invariants: a token is sent only after the owner proved the pinned key (TLS), or to a
loopback address; every answer is read within a size limit; every owner error becomes a
`WasmhiveError` with the owner's own message.
"""

import base64
import http.client
import json
import os
import ssl
import subprocess
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import blake3

# An ed25519 SubjectPublicKeyInfo: these 12 bytes, then the 32-byte key.
_ED25519_KEY_PREFIX = bytes.fromhex("302a300506032b6570032100")
# Largest JSON answer read whole (a result line may carry up to 256 KiB of output).
_ANSWER_BYTES_MAX = 64 << 20
_DEFAULT_LIMITS = {
    "fuel": None,
    "memory_bytes": 256 << 20,
    "output_bytes": 1 << 20,
    "lease_ms": 600_000,
    "timeout_ms": 600_000,
}


class WasmhiveError(Exception):
    """What the owner refused (its HTTP status and message), or why it could not be reached."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status
        self.message = message


def peer_id_of_certificate(der: bytes) -> str:
    """The peer id an owner's certificate proves: blake3 of its ed25519 key, 16 bytes hex."""
    start = der.find(_ED25519_KEY_PREFIX)
    if start < 0:
        raise WasmhiveError("the owner's certificate has no ed25519 key: it is not a wasmhive owner")
    key = der[start + len(_ED25519_KEY_PREFIX) : start + len(_ED25519_KEY_PREFIX) + 32]
    return blake3.blake3(key).digest()[:16].hex()


def _parse_address(address: str):
    """(host, port, pinned peer id or None, plain) from `HOST:PORT[#PEERID]` (a `wss://` or
    `https://` prefix allowed) or `http://HOST:PORT` (the plain loopback API)."""
    plain = address.startswith("http://")
    rest = address
    for scheme in ("http://", "https://", "ws://", "wss://"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
    rest = rest.rstrip("/")
    rest, _, peer_id = rest.partition("#")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WasmhiveError(
            f"bad address {address!r}: use HOST:PORT#PEERID (TLS, the owner's key pinned) or "
            "http://127.0.0.1:PORT (the owner's loopback API, DATA/dashboard.address)"
        )
    if plain and host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        raise WasmhiveError(f"{address!r}: plain HTTP is only for the owner's loopback API; use HOST:PORT#PEERID")
    if not plain and len(peer_id) != 32:
        raise WasmhiveError(f"{address!r}: pin the owner's key: HOST:PORT#PEERID (its 32-hex-digit peer id)")
    return host.strip("[]"), int(port), (peer_id or None), plain


class Client:
    """One owner: `address` as above; the token from `token`, else `$WASMHIVE_TOKEN`, else
    `data_dir/token` (the owner's own data directory, on its machine)."""

    def __init__(self, address: str, token: Optional[str] = None, data_dir: Optional[Union[str, Path]] = None):
        self.host, self.port, self.peer_id, self.plain = _parse_address(address)
        if token is None:
            token = os.environ.get("WASMHIVE_TOKEN")
        if token is None and data_dir is not None:
            token_path = Path(data_dir) / "token"
            try:
                token = token_path.read_text().strip()
            except OSError as error:
                raise WasmhiveError(f"no token: {token_path} is unreadable ({error})") from error
        if not token:
            raise WasmhiveError(
                "no token: pass token=..., set WASMHIVE_TOKEN, or pass data_dir= (the owner keeps it in DATA/token)"
            )
        self.token = token

    # -- jobs ---------------------------------------------------------------------------

    def submit(
        self,
        module: Union[str, Path, bytes],
        inputs: Union[range, Iterable[str], Iterable[bytes], Iterable[Path]],
        *,
        name: str = "job",
        args: Iterable[str] = (),
        quorum: int = 2,
        max_replicas: Optional[int] = None,
        limits: Optional[dict] = None,
        nan_canonicalization: bool = False,
        shared: Optional[dict] = None,
    ) -> str:
        """Submits a job; returns its id. `module` is a .wasm path or its bytes; `inputs` a
        `range` (unit k gets "A B"), lines of text (`str`: unit k gets line k), or byte
        strings or files (`pathlib.Path`), each uploaded as a blob the owner lacks (by its
        hash; unit k reads input k). `shared` maps names to bytes or files every unit reads
        as `/shared/NAME` (Task ABI v2), uploaded the same way."""
        module_bytes = module if isinstance(module, bytes) else Path(module).read_bytes()
        task_name = "task" if isinstance(module, bytes) else Path(module).stem
        submission = {
            "name": name,
            "task_name": task_name,
            "module": base64.b64encode(module_bytes).decode(),
            "args": list(args),
            "inputs": self._inputs(inputs),
            "quorum": quorum,
            "max_replicas": max_replicas if max_replicas is not None else max(quorum * 3, quorum + 1),
            "limits": {**_DEFAULT_LIMITS, **(limits or {})},
            "nan_canonicalization": nan_canonicalization,
        }
        if shared:
            submission["shared"] = [self._blob_input(name, data) for name, data in shared.items()]
        return self._json("POST", "/api/jobs", json.dumps(submission).encode())["job_id"]

    def submit_spec(self, spec: Union[str, Path], wasmhive: str = "wasmhive") -> str:
        """Submits a job spec (TOML) with the `wasmhive` CLI, which reads specs (built-in
        task names, `files` and `shared` uploaded as blobs, human units) the one way the
        owner's tools do; returns the job id. The token goes to it in its environment."""
        if self.plain:
            raise WasmhiveError("submit_spec needs the owner's TLS address, HOST:PORT#PEERID")
        command = [wasmhive, "submit", str(spec), "--to", f"{self.host}:{self.port}#{self.peer_id}"]
        environment = {**os.environ, "WASMHIVE_TOKEN": self.token}
        try:
            ran = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=3600)
        except OSError as error:
            raise WasmhiveError(f"cannot run {wasmhive!r} (install wasmhive, or pass its path): {error}") from error
        if ran.returncode != 0:
            raise WasmhiveError(ran.stderr.strip() or f"wasmhive submit exited with {ran.returncode}")
        return ran.stdout.strip().splitlines()[-1]

    def status(self, job_id: str) -> dict:
        return self._json("GET", f"/api/jobs/{job_id}")

    def wait(self, job_id: str, progress: bool = True) -> dict:
        """Follows the job's progress stream until it ends (a tqdm bar when `progress`);
        returns its last status."""
        from tqdm.auto import tqdm

        bar, last = None, None
        for line in self._lines(f"/api/jobs/{job_id}/progress"):
            last = json.loads(line)
            if progress:
                if bar is None:
                    bar = tqdm(total=last["units"], desc=last["name"], unit="unit")
                bar.update(last["verified"] + last["failed"] - bar.n)
        if bar is not None:
            bar.close()
        if last is None:
            raise WasmhiveError(f"the owner sent no progress for job {job_id}")
        return last

    def results(self, job_id: str) -> Iterator[dict]:
        """Each unit's verified result as the owner streams it, with `output_bytes` (an
        output that is a blob is fetched and checked against its hash)."""
        for line in self._lines(f"/api/jobs/{job_id}/results"):
            result = json.loads(line)
            result["output_bytes"] = self._output_bytes(result)
            yield result

    def reduced(self, job_id: str) -> bytes:
        """The job's reduced result (its reducer's output)."""
        reduced = self._json("GET", f"/api/jobs/{job_id}/reduced")
        if reduced.get("output") is not None:
            return reduced["output"].encode()
        return base64.b64decode(reduced.get("output_base64") or "")

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", f"/api/jobs/{job_id}/cancel", b"{}")

    # -- inputs and outputs -------------------------------------------------------------

    def _inputs(self, inputs) -> dict:
        if isinstance(inputs, range):
            return {"range": {"start": inputs.start, "end": inputs.stop, "step": inputs.step}}
        inputs = list(inputs)
        if inputs and all(isinstance(item, str) for item in inputs):
            return {"lines": {"lines": inputs}}
        blobs = []
        for index, item in enumerate(inputs):
            if not isinstance(item, (bytes, Path)):
                raise WasmhiveError(f"input {index} is a {type(item).__name__}: give str lines, bytes or Path files")
            blobs.append(self._blob_input(f"input-{index}" if isinstance(item, bytes) else item.name, item))
        return {"blobs": {"blobs": blobs}}

    def _blob_input(self, name: str, item: Union[bytes, Path]) -> dict:
        """A named blob input (bytes, or a file's), uploaded unless the owner has it."""
        data = item if isinstance(item, bytes) else Path(item).read_bytes()
        return {"name": name, "hash": self.upload(data), "size": len(data)}

    def upload(self, data: bytes) -> str:
        """Uploads `data` as a blob unless the owner has it; returns its hash."""
        digest = blake3.blake3(data).hexdigest()
        status, _ = self._request("HEAD", f"/api/blobs/{digest}")
        if status != 200:
            self._check(*self._request("PUT", f"/api/blobs/{digest}", data, "application/octet-stream"))
        return digest

    def _output_bytes(self, result: dict) -> bytes:
        if result.get("output") is not None:
            return result["output"].encode()
        if result.get("output_base64") is not None:
            return base64.b64decode(result["output_base64"])
        blob = result.get("output_blob")
        if blob is None:
            return b""
        status, data = self._request("GET", f"/api/blobs/{blob['hash']}")
        self._check(status, data)
        if len(data) != blob["size"] or blake3.blake3(data).hexdigest() != blob["hash"]:
            raise WasmhiveError(f"the owner sent bytes that are not blob {blob['hash']}")
        return data

    # -- HTTP ---------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self.plain:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                connection.connect()
            except OSError as error:
                raise WasmhiveError(f"cannot reach the owner at {self.host}:{self.port}: {error}; is it running?") from error
            return connection
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        # The owner's certificate is self-signed: its key is checked against the pinned id below.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(self.host, self.port, timeout=60, context=context)
        try:
            connection.connect()
        except OSError as error:
            raise WasmhiveError(f"cannot reach the owner at {self.host}:{self.port}: {error}; is it running?") from error
        proven = peer_id_of_certificate(connection.sock.getpeercert(binary_form=True))
        if proven != self.peer_id:
            connection.close()
            raise WasmhiveError(
                f"the owner at {self.host}:{self.port} proved peer id {proven}, not the pinned {self.peer_id}; "
                "no token was sent"
            )
        return connection

    def _request(self, method: str, path: str, body: Optional[bytes] = None, content_type="application/json"):
        connection = self._connect()
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read(_ANSWER_BYTES_MAX + 1) if method != "HEAD" else b""
        except OSError as error:
            raise WasmhiveError(f"{method} {path} failed: {error}") from error
        finally:
            connection.close()
        if len(data) > _ANSWER_BYTES_MAX:
            raise WasmhiveError(f"the owner's answer to {method} {path} is over {_ANSWER_BYTES_MAX >> 20} MiB")
        return response.status, data

    @staticmethod
    def _check(status: int, data: bytes) -> bytes:
        if 200 <= status < 300:
            return data
        try:
            message = json.loads(data)["error"]
        except (ValueError, KeyError, TypeError):
            message = data.decode(errors="replace")
        raise WasmhiveError(f"the owner refused ({status}): {message}", status)

    def _json(self, method: str, path: str, body: Optional[bytes] = None):
        return json.loads(self._check(*self._request(method, path, body)))

    def _lines(self, path: str) -> Iterator[str]:
        """A streamed JSON Lines answer, line by line."""
        connection = self._connect()
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = connection.getresponse()
            if response.status != 200:
                self._check(response.status, response.read(_ANSWER_BYTES_MAX))
            while True:
                line = response.readline(_ANSWER_BYTES_MAX)
                if not line:
                    return
                if line.strip():
                    yield line.decode()
        finally:
            connection.close()
