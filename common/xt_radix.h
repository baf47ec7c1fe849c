/* xt_radix: text encodings whose characters each carry a fixed number of bits (base32: 5,
 * base64: 6), without padding, for any alphabet of 2^bits characters. The nkey (RFC 4648 base32)
 * and JWT (base64url) codecs are these two cases.
 *
 * Encoding writes ceil(len * 8 / bits) characters and a NUL; the last character's unused low bits
 * are zero. Decoding accepts exactly the alphabet's characters (a NUL or any other byte: -1) and
 * drops the trailing bits that do not make a whole byte. */
#ifndef XT_RADIX_H
#define XT_RADIX_H

#include <stddef.h>

/* Encode len bytes; returns the text length, or -1 if out (outlen bytes with the NUL) is too small
 * or bits is not 1..6. */
long xt_radix_encode(const unsigned char *in, size_t len, const char *alphabet, int bits, char *out,
                     size_t outlen);

/* Decode len characters; returns the byte count, or -1 on a character outside the alphabet or
 * output that does not fit in outlen bytes. */
long xt_radix_decode(const char *in, size_t len, const char *alphabet, int bits, unsigned char *out,
                     size_t outlen);

#endif
