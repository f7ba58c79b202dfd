/* CRC-32 (ISO-HDLC, as zlib computes it) for the .1bit checksums, eight bytes
 * per step ("slicing by 8": eight tables, each the CRC of a byte followed by
 * k zero bytes), so that checking a model costs little next to reading it. */
#include <pthread.h>
#include <string.h>

#include "onebit/format.h"

static uint32_t tables[8][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        tables[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int t = 1; t < 8; t++)
            tables[t][b] = (tables[t - 1][b] >> 8) ^ tables[0][tables[t - 1][b] & 0xff];
}

uint32_t ob_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&tables_once, build_tables);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4); /* little-endian hosts only (the reader checks) */
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = tables[7][lo & 0xff] ^ tables[6][(lo >> 8) & 0xff] ^ tables[5][(lo >> 16) & 0xff] ^ tables[4][lo >> 24] ^
            tables[3][hi & 0xff] ^ tables[2][(hi >> 8) & 0xff] ^ tables[1][(hi >> 16) & 0xff] ^ tables[0][hi >> 24];
    }
    for (; n > 0; n--, p++)
        c = tables[0][(c ^ *p) & 0xff] ^ (c >> 8);
    return ~c;
}
