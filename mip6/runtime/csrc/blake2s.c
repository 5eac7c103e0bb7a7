/* BLAKE2s as RFC 7693 specifies it (sections 2 and 3; the parameters of 2.1 for BLAKE2s). */

#include "blake2s.h"

#include <string.h>

#define BLOCK 64
#define ROUNDS 10

/* RFC 7693 2.6: the initialization vector, SHA-256's */
static const uint32_t IV[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                               0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

/* RFC 7693 2.7: the message word schedule permutations, one row per round */
static const uint8_t SIGMA[ROUNDS][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t load32(const uint8_t *p) /* little-endian words (RFC 7693 2.4) */
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* RFC 7693 3.1: the mixing function G, BLAKE2s' rotations (R1..R4 = 16, 12, 8, 7) */
static void mix(uint32_t *v, int a, int b, int c, int d, uint32_t x, uint32_t y)
{
    v[a] = v[a] + v[b] + x;
    v[d] = rotr(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y;
    v[d] = rotr(v[d] ^ v[a], 8);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 7);
}

/* RFC 7693 3.2: the compression function F over one block, `counter` bytes so far */
static void compress(uint32_t *h, const uint8_t *block, uint64_t counter, int last)
{
    uint32_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= (uint32_t)counter;
    v[13] ^= (uint32_t)(counter >> 32);
    if (last)
        v[14] = ~v[14];
    for (int i = 0; i < 16; i++)
        m[i] = load32(block + 4 * i);
    for (int r = 0; r < ROUNDS; r++) {
        const uint8_t *s = SIGMA[r];
        mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
        mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
        mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
        mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
        mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
        mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
        mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
        mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

int blake2s(uint8_t *digest, size_t digest_size, const uint8_t *key, size_t key_size,
            const uint8_t *data, size_t size)
{
    if (digest_size == 0 || digest_size > BLAKE2S_DIGEST_MAX || key_size > BLAKE2S_KEY_MAX)
        return -1;
    uint32_t h[8];
    memcpy(h, IV, sizeof h);
    /* RFC 7693 3.3: parameter block word 0: digest length, key length, fanout 1, depth 1 */
    h[0] ^= 0x01010000 ^ ((uint32_t)key_size << 8) ^ (uint32_t)digest_size;
    uint8_t block[BLOCK];
    uint64_t counter = 0;
    size_t left = size;
    if (key_size > 0) { /* the key, padded to a block, is the first block */
        memset(block, 0, BLOCK);
        memcpy(block, key, key_size);
        counter = BLOCK;
        compress(h, block, counter, size == 0);
    }
    /* every whole block but the last; the last (maybe partial, zero-padded) with the flag */
    while (left > BLOCK) {
        counter += BLOCK;
        compress(h, data, counter, 0);
        data += BLOCK;
        left -= BLOCK;
    }
    if (left > 0 || key_size == 0) {
        memset(block, 0, BLOCK);
        memcpy(block, data, left);
        counter += left;
        compress(h, block, counter, 1);
    }
    uint8_t out[BLAKE2S_DIGEST_MAX];
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)h[i];
        out[4 * i + 1] = (uint8_t)(h[i] >> 8);
        out[4 * i + 2] = (uint8_t)(h[i] >> 16);
        out[4 * i + 3] = (uint8_t)(h[i] >> 24);
    }
    memcpy(digest, out, digest_size);
    return 0;
}
