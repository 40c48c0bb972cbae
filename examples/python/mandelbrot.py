# %% [markdown]
# # The Mandelbrot example from Python
# Renders `examples/mandelbrot` (20 tiles of 40 rows, 1200×800) on a wasmhive grid and
# shows the picture. Run it as a script or cell by cell in a notebook (`# %%` cells):
#
#     pip install -e clients/python
#     wasmhive demo &                  # or any owner with workers; then point OWNER at it
#     OWNER=127.0.0.1:7878#PEERID WASMHIVE_DATA=~/.local/share/wasmhive python examples/python/mandelbrot.py
#
# `OWNER` is the owner's address with its peer id (printed when it starts); the token is
# read from `$WASMHIVE_TOKEN`, or from the owner's data directory `$WASMHIVE_DATA`.

# %%
import os
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

from wasmhive import Client

HERE = Path(__file__).resolve().parent
owner = Client(os.environ["OWNER"], data_dir=os.environ.get("WASMHIVE_DATA"))

# %% The task module: the built-in `mandelbrot`, written out by the CLI.
module = Path(tempfile.mkdtemp()) / "mandelbrot.wasm"
subprocess.run(["wasmhive", "module", "mandelbrot", "--out", str(module)], check=True)
tiles = (HERE.parent / "mandelbrot" / "tiles.txt").read_text().split("\n")
tiles = [tile for tile in tiles if tile.strip()]

# %% Submit (one unit per tile, each verified by 2 workers) and wait with a progress bar.
job = owner.submit(module, inputs=tiles, name="mandelbrot", quorum=2, limits={"output_bytes": 64 << 10})
owner.wait(job)


# %% Each unit's output is a binary PGM tile ("P5 W H 255" + pixels): stack them into a PNG.
def pgm_pixels(tile: bytes):
    fields, position = [], 0
    while len(fields) < 4:  # P5, width, height, 255; then one whitespace byte, then pixels
        while tile[position : position + 1].isspace():
            position += 1
        start = position
        while not tile[position : position + 1].isspace():
            position += 1
        fields.append(tile[start:position])
    assert fields[0] == b"P5" and fields[3] == b"255", "an 8-bit binary PGM tile"
    return int(fields[1]), int(fields[2]), tile[position + 1 :]


def png(width: int, height: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    lines = b"".join(b"\0" + rows[row * width : (row + 1) * width] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(lines)) + chunk(b"IEND", b"")


results = sorted(owner.results(job), key=lambda result: result["unit"])
tiles = [pgm_pixels(result["output_bytes"]) for result in results]
width, height = tiles[0][0], sum(tile[1] for tile in tiles)
picture = Path(os.environ.get("PICTURE", HERE / "mandelbrot.png"))
picture.write_bytes(png(width, height, b"".join(tile[2] for tile in tiles)))
print(f"{picture}: {width}×{height} from {len(tiles)} verified tiles")

# %% In a notebook, show it.
try:
    from IPython.display import Image, display

    display(Image(filename=str(picture)))
except ImportError:
    pass
