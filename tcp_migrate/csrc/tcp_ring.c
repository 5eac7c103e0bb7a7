/* tcp_ring.c: see tcp_ring.h. */
#include "tcp_ring.h"

#include <stdlib.h>
#include <string.h>

/* ---- ring ---------------------------------------------------------------- */

bool ring_valid(const struct tcp_ring *r)
{
    if (r == NULL || r->capacity > TCP_RING_MAX_CAPACITY)
        return false;
    if (r->capacity == 0)
        return r->head == 0 && r->length == 0;
    return r->buf != NULL && r->head < r->capacity &&
           r->length <= r->capacity;
}

int ring_init(struct tcp_ring *r, uint8_t *mem, size_t capacity)
{
    if (r == NULL || capacity > TCP_RING_MAX_CAPACITY ||
        (mem == NULL && capacity > 0))
        return TCP_RING_EINVAL;
    r->buf = capacity > 0 ? mem : NULL;
    r->capacity = (uint32_t)capacity;
    r->head = 0;
    r->length = 0;
    r->owned = 0;
    return TCP_RING_OK;
}

int ring_alloc(struct tcp_ring *r, size_t capacity)
{
    uint8_t *mem = NULL;
    int status;

    if (r == NULL || capacity > TCP_RING_MAX_CAPACITY)
        return TCP_RING_EINVAL;
    if (capacity > 0) {
        mem = malloc(capacity);
        if (mem == NULL)
            return TCP_RING_ENOMEM;
    }
    status = ring_init(r, mem, capacity);
    if (status != TCP_RING_OK) {
        free(mem);
        return status;
    }
    r->owned = capacity > 0;
    return TCP_RING_OK;
}

void ring_free(struct tcp_ring *r)
{
    if (r == NULL)
        return;
    if (r->owned)
        free(r->buf);
    r->buf = NULL;
    r->capacity = 0;
    r->head = 0;
    r->length = 0;
    r->owned = 0;
}

size_t ring_capacity(const struct tcp_ring *r)
{
    return ring_valid(r) ? r->capacity : 0;
}

size_t ring_length(const struct tcp_ring *r)
{
    return ring_valid(r) ? r->length : 0;
}

size_t ring_free_space(const struct tcp_ring *r)
{
    return ring_valid(r) ? (size_t)(r->capacity - r->length) : 0;
}

/* Buffer index of the byte `pos` bytes after head, for pos < capacity.
 * Written without head + pos so it cannot overflow. */
static uint32_t ring_index(const struct tcp_ring *r, uint32_t pos)
{
    uint32_t to_end = r->capacity - r->head;
    return pos < to_end ? r->head + pos : pos - to_end;
}

/* Copies n bytes into the buffer starting `pos` bytes after head, wrapping
 * once; requires pos + n <= capacity. */
static void ring_copy_in(struct tcp_ring *r, uint32_t pos, const uint8_t *src,
                         uint32_t n)
{
    uint32_t start, first;

    if (n == 0)
        return;
    start = ring_index(r, pos);
    first = r->capacity - start;
    if (first > n)
        first = n;
    memcpy(r->buf + start, src, first);
    memcpy(r->buf, src + first, n - first);
}

/* Copies n bytes out of the buffer starting `pos` bytes after head, wrapping
 * once; requires pos + n <= capacity. */
static void ring_copy_out(const struct tcp_ring *r, uint32_t pos, uint8_t *dst,
                          uint32_t n)
{
    uint32_t start, first;

    if (n == 0)
        return;
    start = ring_index(r, pos);
    first = r->capacity - start;
    if (first > n)
        first = n;
    memcpy(dst, r->buf + start, first);
    memcpy(dst + first, r->buf, n - first);
}

size_t ring_write_at(struct tcp_ring *r, size_t offset, const uint8_t *src,
                     size_t n)
{
    uint32_t space;

    if (!ring_valid(r) || src == NULL)
        return 0;
    space = r->capacity - r->length;
    if (offset >= space)
        return 0;
    if (n > space - offset)
        n = space - offset;
    ring_copy_in(r, r->length + (uint32_t)offset, src, (uint32_t)n);
    return n;
}

size_t ring_peek_free(const struct tcp_ring *r, size_t offset, uint8_t *dst,
                      size_t n)
{
    uint32_t space;

    if (!ring_valid(r) || dst == NULL)
        return 0;
    space = r->capacity - r->length;
    if (offset >= space)
        return 0;
    if (n > space - offset)
        n = space - offset;
    ring_copy_out(r, r->length + (uint32_t)offset, dst, (uint32_t)n);
    return n;
}

size_t ring_commit(struct tcp_ring *r, size_t n)
{
    uint32_t space;

    if (!ring_valid(r))
        return 0;
    space = r->capacity - r->length;
    if (n > space)
        n = space;
    r->length += (uint32_t)n;
    return n;
}

size_t ring_write(struct tcp_ring *r, const uint8_t *src, size_t n)
{
    return ring_commit(r, ring_write_at(r, 0, src, n));
}

size_t ring_peek(const struct tcp_ring *r, size_t offset, uint8_t *dst,
                 size_t n)
{
    if (!ring_valid(r) || dst == NULL || offset >= r->length)
        return 0;
    if (n > r->length - offset)
        n = r->length - offset;
    ring_copy_out(r, (uint32_t)offset, dst, (uint32_t)n);
    return n;
}

size_t ring_consume(struct tcp_ring *r, size_t n)
{
    if (!ring_valid(r))
        return 0;
    if (n > r->length)
        n = r->length;
    /* head only ever moves by what is consumed, never back to 0 when the
     * ring empties: bytes placed in the free space by ring_write_at stay at
     * their offset from the end of the readable bytes. */
    if (n > 0 && n < r->capacity)
        r->head = ring_index(r, (uint32_t)n);
    r->length -= (uint32_t)n;
    return n;
}

size_t ring_read(struct tcp_ring *r, uint8_t *dst, size_t n)
{
    return ring_consume(r, ring_peek(r, 0, dst, n));
}

/* ---- reassembly ---------------------------------------------------------- */

bool reasm_valid(const struct tcp_reasm *a)
{
    uint64_t prev_end = 0;
    uint32_t i;

    if (a == NULL || a->limit < 1 || a->limit > TCP_REASM_MAX_INTERVALS ||
        a->count > a->limit)
        return false;
    for (i = 0; i < a->count; i++) {
        uint64_t end = (uint64_t)a->iv[i].offset + a->iv[i].length;
        if (a->iv[i].length == 0 || end > UINT32_MAX)
            return false;
        /* sorted and apart: a gap of at least one byte between intervals */
        if (i > 0 && a->iv[i].offset <= prev_end)
            return false;
        prev_end = end;
    }
    return true;
}

int reasm_init(struct tcp_reasm *a, uint32_t limit)
{
    if (a == NULL || limit < 1 || limit > TCP_REASM_MAX_INTERVALS)
        return TCP_RING_EINVAL;
    memset(a, 0, sizeof *a);
    a->limit = limit;
    return TCP_RING_OK;
}

static void reasm_remove(struct tcp_reasm *a, uint32_t at, uint32_t how_many)
{
    memmove(&a->iv[at], &a->iv[at + how_many],
            (a->count - at - how_many) * sizeof a->iv[0]);
    a->count -= how_many;
}

int reasm_add(struct tcp_reasm *a, uint32_t offset, uint32_t length)
{
    uint32_t end, first, last, i;
    int status = TCP_REASM_STORED;

    if (!reasm_valid(a))
        return TCP_REASM_INVALID;
    end = length > UINT32_MAX - offset ? UINT32_MAX : offset + length;
    if (end == offset)
        return TCP_REASM_STORED;

    /* first: the first interval ending at or after offset (touching counts);
     * last: one past the last interval starting at or before end. */
    for (first = 0; first < a->count; first++)
        if (a->iv[first].offset + a->iv[first].length >= offset)
            break;
    for (last = first; last < a->count; last++)
        if (a->iv[last].offset > end)
            break;

    if (last > first) {
        /* Overlaps or touches iv[first .. last-1]: merge them into iv[first]. */
        uint32_t lo = a->iv[first].offset < offset ? a->iv[first].offset : offset;
        uint32_t hi_last = a->iv[last - 1].offset + a->iv[last - 1].length;
        uint32_t hi = hi_last > end ? hi_last : end;
        a->iv[first].offset = lo;
        a->iv[first].length = hi - lo;
        reasm_remove(a, first + 1, last - first - 1);
        return TCP_REASM_STORED;
    }

    /* Apart from every interval: a new one goes in at index `first`. */
    if (a->count == a->limit) {
        if (first == a->count)
            return TCP_REASM_DROPPED;
        a->count--; /* forget the interval furthest from RCV.NXT */
        status = TCP_REASM_EVICTED;
    }
    for (i = a->count; i > first; i--)
        a->iv[i] = a->iv[i - 1];
    a->iv[first].offset = offset;
    a->iv[first].length = end - offset;
    a->count++;
    return status;
}

uint32_t reasm_front(const struct tcp_reasm *a)
{
    if (!reasm_valid(a) || a->count == 0 || a->iv[0].offset != 0)
        return 0;
    return a->iv[0].length;
}

uint32_t reasm_pop_front(struct tcp_reasm *a)
{
    uint32_t n = reasm_front(a), i;

    if (n == 0)
        return 0;
    reasm_remove(a, 0, 1);
    for (i = 0; i < a->count; i++)
        a->iv[i].offset -= n; /* > n: intervals are apart */
    return n;
}

struct tcp_rx_result ring_receive(struct tcp_ring *r, struct tcp_reasm *a,
                                  size_t offset, const uint8_t *src, size_t n)
{
    struct tcp_rx_result res = {TCP_REASM_INVALID, 0, 0};
    size_t space;

    if (!ring_valid(r) || !reasm_valid(a) || (src == NULL && n > 0))
        return res;
    space = r->capacity - r->length;
    if (n == 0) {
        res.status = TCP_REASM_STORED;
    } else if (offset >= space) {
        res.status = TCP_REASM_BEYOND;
    } else {
        if (n > space - offset)
            n = space - offset; /* space <= 2^30: offset + n fits uint32_t */
        res.status = reasm_add(a, (uint32_t)offset, (uint32_t)n);
        if (res.status == TCP_REASM_STORED || res.status == TCP_REASM_EVICTED)
            res.stored = (uint32_t)ring_write_at(r, offset, src, n);
    }
    res.readable = (uint32_t)ring_commit(r, reasm_pop_front(a));
    return res;
}
