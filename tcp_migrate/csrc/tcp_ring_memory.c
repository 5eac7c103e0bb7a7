/* tcp_ring_memory.c: see tcp_ring_memory.h. */
#include "tcp_ring_memory.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* Before each buffer: its size, and the link of the cache's list while
 * cached.  16 bytes, so the buffer keeps malloc's alignment. */
struct block {
    size_t size;
    struct block *next;
};

_Static_assert(sizeof(struct block) == 16, "the header keeps 16-byte alignment");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct block *cached;
static size_t cached_bytes;
static size_t cached_blocks;

void *ring_memory_alloc(size_t size)
{
    if (size == 0 || size > SIZE_MAX - sizeof(struct block))
        return NULL;
    struct block *found = NULL;
    pthread_mutex_lock(&lock);
    for (struct block **at = &cached; *at != NULL; at = &(*at)->next) {
        if ((*at)->size == size) {
            found = *at;
            *at = found->next;
            cached_bytes -= size;
            cached_blocks--;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    if (found == NULL) {
        found = malloc(sizeof(struct block) + size);
        if (found == NULL)
            return NULL;
        found->size = size;
    }
    found->next = NULL;
    return found + 1;
}

void ring_memory_free(void *mem)
{
    if (mem == NULL)
        return;
    struct block *b = (struct block *)mem - 1;
    pthread_mutex_lock(&lock);
    if (cached_blocks < RING_MEMORY_CACHE_BLOCKS &&
        b->size <= RING_MEMORY_CACHE_BYTES - cached_bytes) {
        b->next = cached;
        cached = b;
        cached_bytes += b->size;
        cached_blocks++;
        b = NULL;
    }
    pthread_mutex_unlock(&lock);
    free(b);
}

/* The connection first, so a pointer to it is a pointer to the whole; the
 * rings' memory kept here whatever the connection's ring structs say. */
struct conn_memory {
    struct tcp_conn conn;
    void *snd;
    void *rcv;
};

struct tcp_conn *conn_memory_new(const struct tcp_config *cfg,
                                 const uint8_t *local_addr, uint16_t local_port,
                                 const uint8_t *remote_addr,
                                 uint16_t remote_port, size_t snd_cap,
                                 size_t rcv_cap)
{
    if (snd_cap > TCP_RING_MAX_CAPACITY || rcv_cap > TCP_RING_MAX_CAPACITY)
        return NULL; /* before a buffer of that size is asked for */
    struct conn_memory *m = malloc(sizeof *m);
    if (m == NULL)
        return NULL;
    m->snd = ring_memory_alloc(snd_cap > 0 ? snd_cap : 1);
    m->rcv = ring_memory_alloc(rcv_cap > 0 ? rcv_cap : 1);
    if (m->snd == NULL || m->rcv == NULL ||
        tcp_conn_init(&m->conn, cfg, local_addr, local_port, remote_addr,
                      remote_port, m->snd, snd_cap, m->rcv,
                      rcv_cap) != TCP_OK) {
        conn_memory_free(&m->conn);
        return NULL;
    }
    return &m->conn;
}

void conn_memory_free(struct tcp_conn *c)
{
    if (c == NULL)
        return;
    struct conn_memory *m = (struct conn_memory *)c;
    ring_memory_free(m->snd);
    ring_memory_free(m->rcv);
    free(m);
}

size_t ring_memory_release(void)
{
    pthread_mutex_lock(&lock);
    struct block *list = cached;
    size_t bytes = cached_bytes;
    cached = NULL;
    cached_bytes = 0;
    cached_blocks = 0;
    pthread_mutex_unlock(&lock);
    while (list != NULL) {
        struct block *next = list->next;
        free(list);
        list = next;
    }
    return bytes;
}

size_t ring_memory_cached(void)
{
    pthread_mutex_lock(&lock);
    size_t bytes = cached_bytes;
    pthread_mutex_unlock(&lock);
    return bytes;
}
