/* GPT-2's byte-level alphabet: every byte value stands for one printable Unicode
 * character in vocabulary spellings (printable Latin-1 bytes stand for
 * themselves; the other 68 bytes map to U+0100 onwards, in byte order), and the
 * UTF-8 decoding helpers the pre-tokenizer needs to find invalid bytes. */
#include <string.h>

#include "tokenizer/tok_internal.h"

static bool printable_byte(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The non-printable bytes are 0..32, 127..160 and 173, so the mapping has a
 * closed form in both directions. */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (printable_byte(b))
        return b;
    if (b <= 32)
        return 256u + b;
    if (b >= 127 && b <= 160)
        return 256u + 33 + (b - 127u);
    return 256u + 67; /* 173, the soft hyphen */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256)
        return printable_byte(cp) ? (int)cp : -1;
    uint32_t n = cp - 256;
    if (n < 33)
        return (int)n;
    if (n < 67)
        return (int)(127 + n - 33);
    if (n == 67)
        return 173;
    return -1;
}

int tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte (Unicode table 3-7) */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < (size_t)len || s[1] < lo || s[1] > hi)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    *cp = v;
    return len;
}

size_t tok_utf8_first_invalid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII runs dominate real text: test 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = tok_utf8_decode(s + i, n - i, &cp);
        if (k == 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

long tok_spelling_to_bytes(const char *spelling, size_t len, uint8_t *out) {
    const uint8_t *s = (const uint8_t *)spelling;
    size_t i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        int k = tok_utf8_decode(s + i, len - i, &cp);
        if (k == 0)
            return -1;
        int b = tok_cp_to_byte(cp);
        if (b < 0)
            return -1;
        out[n++] = (uint8_t)b;
        i += (size_t)k;
    }
    return n;
}

size_t tok_bytes_to_spelling(const uint8_t *bytes, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = tok_byte_to_cp(bytes[i]);
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else {
            out[n++] = (char)(0xC0 | (cp >> 6));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[n] = '\0';
    return n;
}
