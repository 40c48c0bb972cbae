// {{name}}: a wasmhive task (Task ABI v1). Input: any text. Output: how many words it has.
import { output, readInput } from "./wasmhive";

const text = readInput();
let count = 0;
let inWord = false;
for (let index = 0; index < text.length; index++) {
  const code = text.charCodeAt(index);
  const space = code == 32 || code == 9 || code == 10 || code == 13;
  if (!space && !inWord) count++;
  inWord = !space;
}
output(count.toString() + " words\n");
