/* {{name}}: a wasmhive task (Task ABI v1). Input: any text. Output: how many words it has. */
#include "wasmhive.h"

int main(void) {
    size_t length;
    const char *input = wasmhive_read_input(&length);
    uint64_t words = 0;
    int in_word = 0;
    for (size_t index = 0; index < length; index++) {
        int space = isspace((unsigned char)input[index]);
        if (!space && !in_word) words++;
        in_word = !space;
    }
    printf("%llu words\n", (unsigned long long)words);
    return 0;
}
