// wasmhive task helper for AssemblyScript (Task ABI v1, with @assemblyscript/wasi-shim):
// read all of stdin, parse numbers, write the output, fail with a message. Build with
//   asc task.ts --config node_modules/@assemblyscript/wasi-shim/asconfig.json -O3 -o task.wasm
// wasm32 trap: `i32`/`usize` are 32 bits; use u64 for anything that can pass 2^32.

/** Prints "error: MESSAGE" to stderr and exits with code 2 (a deterministic failure). */
export function fail(message: string): void {
  process.stderr.write("error: " + message + "\n");
  process.exit(2);
}

/** All of stdin, as UTF-8 text. */
export function readInput(): string {
  const chunks = new Array<ArrayBuffer>();
  let total = 0;
  while (true) {
    const buffer = new ArrayBuffer(4096);
    const count = process.stdin.read(buffer);
    if (count <= 0) break;
    chunks.push(buffer.slice(0, count));
    total += count;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (let index = 0; index < chunks.length; index++) {
    all.set(Uint8Array.wrap(chunks[index]), offset);
    offset += chunks[index].byteLength;
  }
  return String.UTF8.decode(all.buffer);
}

function isSpace(code: i32): bool {
  return code == 32 || code == 9 || code == 10 || code == 13;
}

/** Exactly `count` whitespace-separated whole numbers from stdin; `names` (e.g.
 *  "START END") is used in the error message. */
export function readNumbers(count: i32, names: string): u64[] {
  const text = readInput();
  const numbers = new Array<u64>();
  let index = 0;
  while (index < text.length) {
    while (index < text.length && isSpace(text.charCodeAt(index))) index++;
    if (index >= text.length) break;
    let value: u64 = 0;
    while (index < text.length && !isSpace(text.charCodeAt(index))) {
      const digit = text.charCodeAt(index) - 48;
      if (digit < 0 || digit > 9 || value > (U64.MAX_VALUE - <u64>digit) / 10) {
        fail("expected " + count.toString() + " numbers `" + names + "`");
      }
      value = value * 10 + <u64>digit;
      index++;
    }
    numbers.push(value);
  }
  if (numbers.length != count) fail("expected " + count.toString() + " numbers `" + names + "`");
  return numbers;
}

/** Writes text to stdout. */
export function output(text: string): void {
  process.stdout.write(text);
}
