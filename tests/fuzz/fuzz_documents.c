/* Fuzz target for the document reader (text in every --doc-split mode, and
 * JSONL): the input is written to a file and read back, with pieces of a few
 * dozen bytes instead of 64 KiB so that small inputs exercise the cutting.
 * Whatever is accepted must come out as non-empty pieces of at most twice the
 * piece size that tile each document, and reopening the reader at a piece must
 * give that piece again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/documents.h"

static char path[512];

static void setup(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/onebit_fuzz_documents_%ld.txt", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    ob_log_set_level(OB_LOG_ERROR);
}

static void read_all(const ob_input_file *f, ob_doc_split split, size_t piece_bytes) {
    ob_doc_reader r;
    if (ob_doc_reader_open(&r, f, split, "text") != OB_OK)
        return;
    r.piece_bytes = piece_bytes;
    size_t doc_len = 0;
    int pieces = 0;
    for (;;) {
        ob_piece p;
        bool have;
        if (ob_doc_reader_next(&r, &p, &have) != OB_OK || !have)
            break;
        if (p.len == 0 || p.len > 2 * piece_bytes || p.first != (doc_len == 0) || p.pos.piece_offset != doc_len)
            abort();
        if (f->format == OB_INPUT_TEXT && (p.text < r.data || p.text + p.len > r.data + r.size))
            abort();
        doc_len = p.last ? 0 : doc_len + p.len;
        ob_doc_pos pos = p.pos;
        size_t len = p.len;
        free(p.release);
        if (++pieces % 7 == 1 && !p.last) {
            /* Reopen at this piece, read it again, and carry on after it. */
            if (ob_doc_reader_seek(&r, &pos) != OB_OK || ob_doc_reader_next(&r, &p, &have) != OB_OK || !have ||
                p.len != len)
                abort();
            free(p.release);
        }
    }
    ob_doc_reader_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0])
        setup();
    if (size > 65536)
        return 0;
    size_t piece_bytes = 8 + size % 57;
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    ob_input_file f = {.path = path, .format = OB_INPUT_TEXT, .size = size};
    read_all(&f, OB_DOC_SPLIT_FILE, piece_bytes);
    read_all(&f, OB_DOC_SPLIT_BLANK_LINE, piece_bytes);
    read_all(&f, OB_DOC_SPLIT_EOT, piece_bytes);
    f.format = OB_INPUT_JSONL;
    read_all(&f, OB_DOC_SPLIT_FILE, piece_bytes);
    unlink(path);
    return 0;
}
