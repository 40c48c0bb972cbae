"""The Python client against a real owner and two workers (processes of the `wasmhive`
binary, `$WASMHIVE_BIN` or the workspace's debug build), on loopback."""

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from wasmhive import Client, WasmhiveError

ROOT = Path(__file__).resolve().parents[3]
BINARY = os.environ.get("WASMHIVE_BIN", str(ROOT / "target" / "debug" / "wasmhive"))


def start(args, log: Path) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen([BINARY, *args], stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def address_in(log: Path) -> str:
    deadline = time.time() + 30
    while time.time() < deadline:
        match = re.search(r"listening on (\S+#[0-9a-f]{32})\s", log.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError(f"the owner did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def grid():
    with tempfile.TemporaryDirectory(prefix="wasmhive-python-") as directory:
        directory = Path(directory)
        data = directory / "owner"
        data.mkdir()
        processes = [start(["coordinator", "--listen", "127.0.0.1:0", "--data", str(data)], directory / "owner.log")]
        try:
            address = address_in(directory / "owner.log")
            for index in range(2):
                # Replicas of a unit must come from distinct networks: one loopback /24 each.
                network = f"127.{90 + index}.{os.getpid() % 250}.2"
                worker = ["worker", "--join", address, "--cpus", "1", "--bind-address", network,
                          "--data", str(directory / f"worker-{index}")]
                processes.append(start(worker, directory / f"worker-{index}.log"))
            for name in ("primes", "digest", "probe"):
                subprocess.run([BINARY, "module", name, "--out", str(directory / f"{name}.wasm")], check=True)
            yield {"address": address, "data": data, "directory": directory}
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)


def test_a_range_job_is_submitted_followed_and_its_verified_results_read(grid):
    owner = Client(grid["address"], data_dir=grid["data"])
    job = owner.submit(grid["directory"] / "primes.wasm", inputs=range(0, 100_000, 10_000), quorum=2, name="primes")
    final = owner.wait(job, progress=False)
    assert final["state"] == "completed" and final["verified"] == 10, final
    results = list(owner.results(job))
    assert len(results) == 10 and all(result["replicas"] == 2 for result in results)
    assert sum(int(result["output_bytes"]) for result in results) == 9592  # primes below 10^5


def test_byte_string_inputs_travel_as_blobs_and_large_outputs_come_back_whole(grid):
    owner = Client(grid["address"], data_dir=grid["data"])
    inputs = [b"abc", bytes(range(256)) * 4000]
    job = owner.submit(grid["directory"] / "digest.wasm", inputs=inputs, args=["sha256"], quorum=2)
    owner.wait(job, progress=False)
    outputs = {result["unit"]: result["output_bytes"] for result in owner.results(job)}
    assert outputs == {unit: hashlib.sha256(data).hexdigest()[:16].encode() + b"\n" for unit, data in enumerate(inputs)}
    # An output above 256 KiB is a blob on the owner: fetched and checked by its hash.
    large = bytes(range(256)) * 1200
    job = owner.submit(grid["directory"] / "probe.wasm", inputs=[large], args=["repeat", "2"], quorum=2,
                       limits={"output_bytes": 1 << 20})
    owner.wait(job, progress=False)
    (result,) = owner.results(job)
    assert result["output_blob"]["size"] == 2 * len(large)
    assert result["output_bytes"] == large * 2


def test_a_job_is_cancelled(grid):
    owner = Client(grid["address"], data_dir=grid["data"])
    job = owner.submit(grid["directory"] / "primes.wasm", inputs=range(0, 10**12, 10**7), quorum=2)
    owner.cancel(job)
    assert owner.status(job)["state"] == "cancelled"


def test_errors_carry_the_owners_message_and_a_wrong_key_gets_no_token(grid):
    with pytest.raises(WasmhiveError) as refused:
        Client(grid["address"], token="wrong").status("any")
    assert refused.value.status == 401 and "token" in refused.value.message
    owner = Client(grid["address"], data_dir=grid["data"])
    with pytest.raises(WasmhiveError) as missing:
        owner.status("no-such-job")
    assert missing.value.status == 404 and "no-such-job" in missing.value.message
    host_port = grid["address"].split("#")[0]
    with pytest.raises(WasmhiveError) as impostor:
        Client(f"{host_port}#{'0' * 32}", token="secret").status("any")
    assert "not the pinned" in impostor.value.message and "no token was sent" in impostor.value.message
    with pytest.raises(WasmhiveError) as unpinned:
        Client(host_port, token="secret")
    assert "pin the owner's key" in unpinned.value.message
    with pytest.raises(WasmhiveError) as nobody:
        Client("http://127.0.0.1:1", token="secret").status("any")
    assert "cannot reach the owner" in nobody.value.message


def test_the_mandelbrot_example_renders_its_png(grid):
    picture = grid["directory"] / "mandelbrot.png"
    environment = {
        **os.environ,
        "OWNER": grid["address"],
        "WASMHIVE_DATA": str(grid["data"]),
        "PICTURE": str(picture),
        "PATH": f"{Path(BINARY).parent}{os.pathsep}{os.environ['PATH']}",
    }
    example = ROOT / "examples" / "python" / "mandelbrot.py"
    ran = subprocess.run([sys.executable, str(example)], env=environment, capture_output=True, timeout=300)
    assert ran.returncode == 0, ran.stderr.decode()
    png = picture.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[16:24] == (1200).to_bytes(4, "big") + (800).to_bytes(4, "big"), "1200×800, from 20 verified tiles"


def test_a_job_spec_is_submitted_through_the_cli(grid):
    owner = Client(grid["address"], data_dir=grid["data"])
    spec = grid["directory"] / "primes.toml"
    spec.write_text('name = "from-spec"\nmodule = "primes"\n[inputs]\nrange = { start = 0, end = 1000, step = 100 }\n')
    job = owner.submit_spec(spec, wasmhive=BINARY)
    final = owner.wait(job, progress=False)
    assert final["name"] == "from-spec" and final["verified"] == 10, final
    assert sum(int(result["output_bytes"]) for result in owner.results(job)) == 168  # primes below 1000
    spec.write_text('module = "no-such-task"\n')
    with pytest.raises(WasmhiveError) as broken:
        owner.submit_spec(spec, wasmhive=BINARY)
    assert "no-such-task" in broken.value.message


def test_every_unit_reads_the_shared_files(grid):
    owner = Client(grid["address"], data_dir=grid["data"])
    model = bytes(range(200)) * 50
    job = owner.submit(grid["directory"] / "probe.wasm", inputs=range(0, 3, 1), args=["files"], quorum=2,
                       shared={"model.bin": model})
    owner.wait(job, progress=False)
    results = list(owner.results(job))
    assert len(results) == 3
    for result in results:
        assert f"/shared/model.bin: {len(model)} bytes".encode() in result["output_bytes"], result
