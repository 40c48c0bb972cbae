// {{name}}: a wasmhive task. Input: any text. Output: how many words it has, not counting
// the words of the shared file `ignore.txt` if the job has one (Task ABI v2: a job's
// shared files are read-only files under /shared; `[inputs] shared = ["ignore.txt"]` in a
// job spec, `--shared ignore.txt` with `wasmhive run`).
import { output, readInput } from "./wasmhive";
import { fd_close, fd_read, path_open, rights } from "@assemblyscript/wasi-shim/assembly/bindings/wasi_snapshot_preview1";

/** The sandbox's one preopened directory, `/` (WASI descriptor 3). */
const ROOT: u32 = 3;

/** A shared file's bytes as UTF-8 text, or "" when the job has no such file. */
function readShared(name: string): string {
  const path = String.UTF8.encode("shared/" + name);
  const opened = new ArrayBuffer(4);
  const errno = path_open(ROOT, 0, changetype<usize>(path), path.byteLength, 0, rights.FD_READ, 0, 0, changetype<usize>(opened));
  if (errno != 0) return "";
  const file = load<u32>(changetype<usize>(opened));
  let text = "";
  const buffer = new ArrayBuffer(4096);
  const vector = new ArrayBuffer(8);
  const read = new ArrayBuffer(4);
  store<u32>(changetype<usize>(vector), changetype<u32>(buffer));
  store<u32>(changetype<usize>(vector), 4096, 4);
  while (fd_read(file, changetype<usize>(vector), 1, changetype<usize>(read)) == 0) {
    const count = load<u32>(changetype<usize>(read));
    if (count == 0) break;
    text += String.UTF8.decode(buffer.slice(0, count));
  }
  fd_close(file);
  return text;
}

function isSpace(code: i32): bool {
  return code == 32 || code == 9 || code == 10 || code == 13;
}

/** The whitespace-separated words of `text`. */
function words(text: string): string[] {
  const found = new Array<string>();
  let index = 0;
  while (index < text.length) {
    while (index < text.length && isSpace(text.charCodeAt(index))) index++;
    const start = index;
    while (index < text.length && !isSpace(text.charCodeAt(index))) index++;
    if (index > start) found.push(text.substring(start, index));
  }
  return found;
}

const ignored = words(readShared("ignore.txt"));
const input = words(readInput());
let count = 0;
for (let index = 0; index < input.length; index++) {
  if (!ignored.includes(input[index])) count++;
}
output(count.toString() + " words\n");
