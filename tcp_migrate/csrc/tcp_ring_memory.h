/*
 * tcp_ring_memory.h: memory for the rings of connections the Python layer
 * makes (tcp_migrate.core.Connection), from a bounded cache of freed buffers.
 *
 * A connection's two rings are large (256 KiB each by default).  Released
 * at the top of the heap, glibc gives them back to the kernel (brk) and
 * takes them again for the next connection: two system calls per ring and
 * most of the cost of importing a connection.  Freed buffers are kept here
 * instead, up to RING_MEMORY_CACHE_BYTES and _BLOCKS in all, and handed out again for a
 * request of the same size; the rest goes back to free().
 *
 * The buffers are not cleared (the rings never expose a byte they were not
 * given).  A buffer is freed only when the Python object owning it is
 * collected, so no live connection shares one.  Thread-safe.
 */
#ifndef TCP_MIGRATE_TCP_RING_MEMORY_H
#define TCP_MIGRATE_TCP_RING_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "tcp_conn.h"

/* Most bytes the cache keeps: 64 MiB, the rings of 128 default connections. */
#define RING_MEMORY_CACHE_BYTES (64u << 20)
/* Most buffers it keeps (an allocation walks them to find its size). */
#define RING_MEMORY_CACHE_BLOCKS 256

/* size bytes (16-byte aligned), NULL when malloc fails or size is 0. */
void *ring_memory_alloc(size_t size);
/* Back to the cache, or to free() when it is full; NULL does nothing. */
void ring_memory_free(void *mem);
/*
 * A CLOSED connection for the Python layer in one call: the struct from
 * malloc and its two rings (snd_cap and rcv_cap bytes, at least 1) from the
 * cache, set up by tcp_conn_init.  NULL when memory runs out or
 * tcp_conn_init refuses the arguments.  Three allocations and an init made
 * one at a time through cffi were a third of an import's cost.
 */
struct tcp_conn *conn_memory_new(const struct tcp_config *cfg,
                                 const uint8_t *local_addr, uint16_t local_port,
                                 const uint8_t *remote_addr,
                                 uint16_t remote_port, size_t snd_cap,
                                 size_t rcv_cap);
/* The connection and its rings back (to the cache); NULL does nothing. */
void conn_memory_free(struct tcp_conn *c);
/* Bytes the cache holds now. */
size_t ring_memory_cached(void);
/* Everything cached back to free(); the bytes that were cached. */
size_t ring_memory_release(void);

#endif
