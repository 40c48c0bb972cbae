/* {{name}}: a wasmhive task. Input: any text. Output: how many words it has, not counting
 * the words of the shared file `ignore.txt` if the job has one (Task ABI v2: a job's
 * shared files are read-only files under /shared; `[inputs] shared = ["ignore.txt"]` in a
 * job spec, `--shared ignore.txt` with `wasmhive run`). */
#include "wasmhive.h"

/* The words to ignore, separated by whitespace ("" when the job has no such file). */
static char ignored[1 << 16];

static void read_ignored(void) {
    FILE *file = fopen("/shared/ignore.txt", "rb");
    if (file == NULL) return;
    size_t length = fread(ignored, 1, sizeof ignored - 1, file);
    ignored[length] = '\0';
    fclose(file);
}

/* Whether the word of `length` bytes at `word` is one of the ignored words. */
static int is_ignored(const char *word, size_t length) {
    const char *cursor = ignored;
    while (*cursor) {
        while (*cursor && isspace((unsigned char)*cursor)) cursor++;
        const char *start = cursor;
        while (*cursor && !isspace((unsigned char)*cursor)) cursor++;
        if ((size_t)(cursor - start) == length && length > 0 && memcmp(start, word, length) == 0) return 1;
    }
    return 0;
}

int main(void) {
    read_ignored();
    size_t length;
    const char *input = wasmhive_read_input(&length);
    uint64_t words = 0;
    size_t index = 0;
    while (index < length) {
        while (index < length && isspace((unsigned char)input[index])) index++;
        size_t start = index;
        while (index < length && !isspace((unsigned char)input[index])) index++;
        if (index > start && !is_ignored(input + start, index - start)) words++;
    }
    printf("%llu words\n", (unsigned long long)words);
    return 0;
}
