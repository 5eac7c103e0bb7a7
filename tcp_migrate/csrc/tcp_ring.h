/*
 * tcp_ring.h: the byte rings behind a connection's send and receive queues,
 * and the out-of-order reassembly record for the receive side.
 *
 * A ring holds `length` readable bytes starting at index `head` of a buffer
 * of `capacity` bytes; the `capacity - length` bytes after them are free.
 *
 *   send queue:    ring_write() appends application data; ring_peek() at an
 *                  offset from the start (SND.UNA) reads bytes to (re)transmit;
 *                  ring_consume() drops bytes once they are acknowledged.
 *   receive queue: ring_receive() places a segment's payload into the free
 *                  space at an offset from the end of the readable bytes
 *                  (RCV.NXT), records it in a struct tcp_reasm and makes the
 *                  contiguous prefix readable; ring_read() hands bytes to the
 *                  application.
 *
 * Bounds: every count and offset argument is clipped to what the ring holds
 * or has room for, and every function first checks the structure's own
 * invariants (ring_valid, reasm_valid) and does nothing on a corrupt one, so
 * no input, and no imported state, makes these functions read or write outside
 * buf[0 .. capacity).  What the caller promises: `src` holds `n` readable
 * bytes, `dst` has room for `n` bytes, and `buf` has `capacity` bytes.
 *
 * All sizes are in bytes.  Fields are fixed-width so a ring's state can be
 * exported as plain integers.
 */
#ifndef TCP_MIGRATE_TCP_RING_H
#define TCP_MIGRATE_TCP_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest ring: 2^30 bytes, just above the largest TCP window (65535 << 14,
 * RFC 7323 2.3), so every offset into a ring is a valid sequence-number
 * difference. */
#define TCP_RING_MAX_CAPACITY 1073741824

/* Most out-of-order intervals a struct tcp_reasm can hold. */
#define TCP_REASM_MAX_INTERVALS 32

enum tcp_ring_status {
    TCP_RING_OK = 0,
    TCP_RING_EINVAL = -1, /* NULL ring, NULL memory with capacity > 0, or
                             capacity > TCP_RING_MAX_CAPACITY */
    TCP_RING_ENOMEM = -2, /* malloc failed */
};

struct tcp_ring {
    uint8_t *buf;
    uint32_t capacity;
    uint32_t head;   /* index of the first readable byte; < capacity, or 0 */
    uint32_t length; /* readable bytes; <= capacity */
    uint8_t owned;   /* buf came from ring_alloc and ring_free releases it */
};

/* Empty ring over caller-owned memory (mem may be NULL when capacity is 0).
 * The memory must outlive the ring; ring_free does not release it. */
int ring_init(struct tcp_ring *r, uint8_t *mem, size_t capacity);
/* Empty ring over capacity bytes from malloc; release with ring_free. */
int ring_alloc(struct tcp_ring *r, size_t capacity);
/* Releases owned memory and leaves an empty ring of capacity 0. */
void ring_free(struct tcp_ring *r);
/* Whether the fields satisfy the invariants above (false for NULL). */
bool ring_valid(const struct tcp_ring *r);

size_t ring_capacity(const struct tcp_ring *r);
size_t ring_length(const struct tcp_ring *r);     /* readable bytes */
size_t ring_free_space(const struct tcp_ring *r); /* capacity - length */

/* Appends min(n, free space) bytes of src; returns how many. */
size_t ring_write(struct tcp_ring *r, const uint8_t *src, size_t n);
/* Copies up to n readable bytes starting `offset` bytes after the first into
 * dst, without consuming them; returns how many (0 if offset >= length). */
size_t ring_peek(const struct tcp_ring *r, size_t offset, uint8_t *dst,
                 size_t n);
/* Drops min(n, length) bytes from the front; returns how many.  Bytes in the
 * free space (placed by ring_write_at) keep their offset from the end of the
 * readable bytes, even when the ring empties. */
size_t ring_consume(struct tcp_ring *r, size_t n);
/* ring_peek at offset 0 followed by ring_consume of what was copied. */
size_t ring_read(struct tcp_ring *r, uint8_t *dst, size_t n);

/* Copies src into the free space starting `offset` bytes after the last
 * readable byte, clipped to the free space, without making it readable;
 * returns how many bytes were copied (0 if offset >= free space). */
size_t ring_write_at(struct tcp_ring *r, size_t offset, const uint8_t *src,
                     size_t n);
/* Copies up to n bytes of the free space starting `offset` bytes after the
 * last readable byte (what ring_write_at placed there) into dst, clipped to
 * the free space; returns how many (0 if offset >= free space). */
size_t ring_peek_free(const struct tcp_ring *r, size_t offset, uint8_t *dst,
                      size_t n);
/* Makes the first min(n, free space) free bytes readable; returns how many. */
size_t ring_commit(struct tcp_ring *r, size_t n);

/*
 * Out-of-order reassembly.  Intervals of received bytes, as offsets from
 * RCV.NXT (the end of the receive ring's readable bytes), kept sorted,
 * non-empty, and apart: overlapping or adjacent intervals are merged.  At most
 * `limit` intervals are kept.
 */
struct tcp_reasm_interval {
    uint32_t offset;
    uint32_t length;
};

struct tcp_reasm {
    uint32_t count; /* intervals in use, <= limit */
    uint32_t limit; /* 1 .. TCP_REASM_MAX_INTERVALS */
    struct tcp_reasm_interval iv[TCP_REASM_MAX_INTERVALS];
};

enum tcp_reasm_status {
    TCP_REASM_STORED = 0,  /* recorded */
    TCP_REASM_EVICTED = 1, /* recorded; to make room, the interval furthest
                              from RCV.NXT was forgotten (its bytes must be
                              received again) */
    TCP_REASM_DROPPED = 2, /* not recorded: all `limit` intervals are in use
                              and the segment lies beyond all of them */
    TCP_REASM_BEYOND = 3,  /* ring_receive only: the segment starts at or
                              beyond the ring's free space; nothing stored */
    TCP_REASM_INVALID = -1, /* corrupt or NULL structure; nothing changed */
};

/* Empty record keeping at most `limit` intervals (1 .. MAX, else EINVAL). */
int reasm_init(struct tcp_reasm *a, uint32_t limit);
/* Whether the fields satisfy the invariants above (false for NULL). */
bool reasm_valid(const struct tcp_reasm *a);
/*
 * Records bytes [offset, offset + length); the end is clipped to 2^32 - 1.
 * When the segment neither overlaps nor touches a recorded interval and all
 * `limit` are in use, it evicts the last interval if the segment lies before
 * it (so an in-order segment is never refused), and is dropped otherwise.
 * A zero length records nothing and returns TCP_REASM_STORED.
 */
int reasm_add(struct tcp_reasm *a, uint32_t offset, uint32_t length);
/* Length of the interval starting at offset 0: bytes ready at RCV.NXT. */
uint32_t reasm_front(const struct tcp_reasm *a);
/* Removes the interval at offset 0 and moves the others that many bytes
 * closer (RCV.NXT advanced past it); returns its length, 0 if none. */
uint32_t reasm_pop_front(struct tcp_reasm *a);

/* Outcome of ring_receive. */
struct tcp_rx_result {
    int status;        /* enum tcp_reasm_status */
    uint32_t stored;   /* payload bytes written and recorded (the segment
                          clipped to the ring's free space) */
    uint32_t readable; /* bytes that became readable (RCV.NXT advances by) */
};

/*
 * Receives a segment payload of n bytes that starts `offset` bytes after
 * RCV.NXT (the caller has already trimmed bytes before RCV.NXT): clips it to
 * the ring's free space, records it in `a`, copies it into the ring, and
 * makes the contiguous prefix readable.  A DROPPED or BEYOND segment writes
 * nothing.  An empty payload (n == 0) is STORED with stored == 0.
 * Overlapping bytes are overwritten with the newer copy.  The ring must not be
 * written by other means while `a` holds intervals.
 */
struct tcp_rx_result ring_receive(struct tcp_ring *r, struct tcp_reasm *a,
                                  size_t offset, const uint8_t *src,
                                  size_t n);

#endif /* TCP_MIGRATE_TCP_RING_H */
