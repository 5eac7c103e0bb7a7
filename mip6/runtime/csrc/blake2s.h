/* BLAKE2s (RFC 7693), keyed, for the fast path's TCP host: the keyed hashes tcp_migrate's
 * stack draws a passive open's initial sequence number and timestamp offset from
 * (tcp_migrate.stack.Stack._keyed: hashlib.blake2s with a key, a digest of 4 bytes), so that a
 * SYN answered in C gets what the stack would have given it. */

#ifndef MIP6_BLAKE2S_H
#define MIP6_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

#define BLAKE2S_KEY_MAX 32
#define BLAKE2S_DIGEST_MAX 32

/* The `digest_size`-byte BLAKE2s of `data` (`size` bytes) keyed with `key` (`key_size` bytes,
 * at most BLAKE2S_KEY_MAX; 0: unkeyed) into `digest`; -1 for sizes out of range. */
int blake2s(uint8_t *digest, size_t digest_size, const uint8_t *key, size_t key_size,
            const uint8_t *data, size_t size);

#endif
