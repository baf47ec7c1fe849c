/* xt_radix: fixed-width-per-character encodings (contract in xt_radix.h). */
#include "xt_radix.h"

#include <string.h>

long xt_radix_encode(const unsigned char *in, size_t len, const char *alphabet, int bits, char *out,
                     size_t outlen)
{
    if (bits < 1 || bits > 6) return -1;
    size_t need = (len * 8 + (size_t)bits - 1) / (size_t)bits;
    if (outlen < need + 1) return -1;
    unsigned mask = (1u << bits) - 1, buf = 0;
    int have = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        buf = (buf << 8) | in[i];
        have += 8;
        while (have >= bits) {
            out[o++] = alphabet[(buf >> (have - bits)) & mask];
            have -= bits;
        }
        buf &= (1u << have) - 1;
    }
    if (have > 0) out[o++] = alphabet[(buf << (bits - have)) & mask];
    out[o] = '\0';
    return (long)o;
}

long xt_radix_decode(const char *in, size_t len, const char *alphabet, int bits, unsigned char *out,
                     size_t outlen)
{
    if (bits < 1 || bits > 6) return -1;
    size_t o = 0;
    unsigned buf = 0;
    int have = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = in[i] ? strchr(alphabet, in[i]) : NULL;
        if (p == NULL) return -1;
        buf = (buf << bits) | (unsigned)(p - alphabet);
        have += bits;
        if (have >= 8) {
            if (o >= outlen) return -1;
            out[o++] = (unsigned char)(buf >> (have - 8));
            have -= 8;
            buf &= (1u << have) - 1;
        }
    }
    return (long)o;
}
