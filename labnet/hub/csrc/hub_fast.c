/* The hub's fast path: see hub_fast.h, and labnet/hub/server.py for the Python it mirrors. */

#define _GNU_SOURCE
#include "hub_fast.h"
#include "udp_runs.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* RFC 8200 3: Version in the top 4 bits of byte 0, Hop Limit at byte 7, Source Address at bytes
 * 8-23, Destination Address at bytes 24-39. */
#define IPV6_HEADER 40
#define HOP_LIMIT 7
#define ADDRESSES 8
#define KEY_BYTES 32

/* capture.py _RECORD: seconds, microseconds, captured length, original length (little-endian) */
#define RECORD_HEADER 16
#define CAPTURE_CAPACITY (FAST_CAPTURE_CHUNK + RECORD_HEADER + FAST_MAX_PACKET)

/* Datagrams one recvmmsg reads and one sendmmsg writes at most: one system call per batch
 * rather than per packet, where most of a small packet's cost in the hub is. */
#define BATCH 32

/* A UDP link's batches: datagrams read ahead (recvmmsg), and the packets forwarded to it,
 * written at once (sendmmsg) before fast_drain returns and before the slots they point into
 * are read into again. */
struct batch {
    uint8_t *in; /* BATCH slots of FAST_MAX_PACKET bytes */
    struct mmsghdr in_messages[BATCH];
    struct iovec in_vectors[BATCH];
    struct sockaddr_storage sources[BATCH];
    int in_next, in_count; /* read ahead: slots in_next .. in_count-1 still to process */
    struct iovec out_vectors[BATCH]; /* into the arrival link's slots */
    uint8_t out_headers[BATCH][RECORD_HEADER]; /* the capture record of each, once sent */
    int out_count;
    /* what flush writes: one message per run of packets (udp_runs.h, in mip6/runtime/csrc) */
    struct mmsghdr run_messages[BATCH];
    udp_runs_control run_controls[BATCH];
    int run_first[BATCH], run_count[BATCH];
};

struct decision {
    uint8_t key[KEY_BYTES];
    int32_t out_plus_one; /* 0: an empty slot */
};

struct fast_link {
    int fd;    /* -1: not set */
    int udp;   /* a UDP socket (recvmmsg, sendmmsg); else a TUN device (read, write) */
    int gso;   /* a UDP socket written with segmentation offload (udp_runs.h) */
    struct batch *batch; /* a UDP socket's (NULL: a TUN device) */
    int pinned;
    int up_transparent;
    int down_transparent;
    struct sockaddr_storage endpoint; /* the node's address: family AF_UNSPEC until known */
    socklen_t endpoint_length;
    int capture_fd; /* -1: not capturing */
    int capture_errno; /* a failed write, reported by the next fast_flush */
    uint8_t *capture;
    size_t capture_length;
    struct fast_counters counters;
};

struct fast_hub {
    int link_count;
    uint8_t *buffer; /* FAST_MAX_PACKET bytes at least */
    int decision_count;
    int pending_link;          /* a link whose punt fast_wait left in the buffer; -1: none */
    struct fast_punt pending;  /* that punt */
    struct fast_link *links;
    struct decision decisions[FAST_DECISIONS];
};

static struct fast_link *link_at(struct fast_hub *hub, int link)
{
    if (hub == NULL || link < 0 || link >= hub->link_count)
        return NULL;
    return &hub->links[link];
}

struct fast_hub *fast_new(int links, uint8_t *buffer, size_t capacity)
{
    if (links <= 0 || buffer == NULL || capacity < FAST_MAX_PACKET)
        return NULL;
    struct fast_hub *hub = calloc(1, sizeof *hub);
    if (hub == NULL)
        return NULL;
    hub->links = calloc((size_t)links, sizeof *hub->links);
    if (hub->links == NULL) {
        free(hub);
        return NULL;
    }
    hub->link_count = links;
    hub->buffer = buffer;
    hub->pending_link = -1;
    for (int i = 0; i < links; i++) {
        hub->links[i].fd = -1;
        hub->links[i].capture_fd = -1;
        hub->links[i].endpoint.ss_family = AF_UNSPEC;
    }
    return hub;
}

void fast_free(struct fast_hub *hub)
{
    if (hub == NULL)
        return;
    for (int i = 0; i < hub->link_count; i++) {
        free(hub->links[i].capture);
        if (hub->links[i].batch != NULL)
            free(hub->links[i].batch->in);
        free(hub->links[i].batch);
    }
    free(hub->links);
    free(hub);
}

static struct batch *new_batch(void)
{
    struct batch *batch = calloc(1, sizeof *batch);
    if (batch == NULL)
        return NULL;
    batch->in = malloc((size_t)BATCH * FAST_MAX_PACKET);
    if (batch->in == NULL) {
        free(batch);
        return NULL;
    }
    for (int i = 0; i < BATCH; i++) {
        batch->in_vectors[i].iov_base = batch->in + (size_t)i * FAST_MAX_PACKET;
        batch->in_vectors[i].iov_len = FAST_MAX_PACKET;
        batch->in_messages[i].msg_hdr.msg_iov = &batch->in_vectors[i];
        batch->in_messages[i].msg_hdr.msg_iovlen = 1;
        batch->in_messages[i].msg_hdr.msg_name = &batch->sources[i];
    }
    return batch;
}

int fast_set_link(struct fast_hub *hub, int link, int fd, int udp, int pinned)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL || fd < 0)
        return -EINVAL;
    if (udp && l->batch == NULL) {
        l->batch = new_batch();
        if (l->batch == NULL)
            return -ENOMEM;
    }
    l->fd = fd;
    l->udp = udp != 0;
    l->gso = l->udp && udp_runs_possible(fd);
    l->pinned = pinned != 0;
    return 0;
}

int fast_set_down_transparent(struct fast_hub *hub, int link, int transparent)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL)
        return -EINVAL;
    l->down_transparent = transparent != 0;
    return 0;
}

int fast_set_up_transparent(struct fast_hub *hub, int link, int transparent)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL)
        return -EINVAL;
    l->up_transparent = transparent != 0;
    return 0;
}

int fast_set_endpoint(struct fast_hub *hub, int link, int family, const uint8_t *address,
                      uint16_t port, uint32_t flowinfo, uint32_t scope_id)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL)
        return -EINVAL;
    memset(&l->endpoint, 0, sizeof l->endpoint);
    if (family == AF_INET6) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&l->endpoint;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        v6->sin6_flowinfo = htonl(flowinfo);
        memcpy(&v6->sin6_addr, address, 16);
        v6->sin6_scope_id = scope_id;
        l->endpoint_length = sizeof *v6;
    } else if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&l->endpoint;
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        memcpy(&v4->sin_addr, address, 4);
        l->endpoint_length = sizeof *v4;
    } else {
        l->endpoint.ss_family = AF_UNSPEC;
        l->endpoint_length = 0;
        if (family != 0)
            return -EINVAL;
    }
    return 0;
}

/* Whether `source` is the link's endpoint, compared as Python compares the (host, port[,
 * flowinfo, scope_id]) tuples recvfrom gives. */
static int is_endpoint(const struct fast_link *l, const struct sockaddr_storage *source)
{
    if (source->ss_family != l->endpoint.ss_family)
        return 0;
    if (source->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)source;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&l->endpoint;
        return a->sin6_port == b->sin6_port && a->sin6_flowinfo == b->sin6_flowinfo &&
               a->sin6_scope_id == b->sin6_scope_id &&
               memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
    }
    if (source->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)source;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&l->endpoint;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    return 0;
}

static void describe_source(const struct sockaddr_storage *source, struct fast_punt *punt)
{
    memset(punt->address, 0, sizeof punt->address);
    punt->family = source->ss_family;
    punt->port = 0;
    punt->flowinfo = punt->scope_id = 0;
    if (source->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)source;
        memcpy(punt->address, &v6->sin6_addr, 16);
        punt->port = ntohs(v6->sin6_port);
        punt->flowinfo = ntohl(v6->sin6_flowinfo);
        punt->scope_id = v6->sin6_scope_id;
    } else if (source->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)source;
        memcpy(punt->address, &v4->sin_addr, 4);
        punt->port = ntohs(v4->sin_port);
    }
}

/* -- the decision table: open addressing, linear probing, at most half full ------------------ */

static size_t slot_of(const uint8_t *key)
{
    uint64_t word, hash = 0;
    for (int i = 0; i < KEY_BYTES; i += 8) {
        memcpy(&word, key + i, 8);
        hash = (hash ^ word) * 0x9E3779B97F4A7C15ull;
    }
    return (size_t)(hash ^ (hash >> 32)) & (FAST_DECISIONS - 1);
}

static int lookup(const struct fast_hub *hub, const uint8_t *key)
{
    for (size_t i = slot_of(key);; i = (i + 1) & (FAST_DECISIONS - 1)) {
        const struct decision *d = &hub->decisions[i];
        if (d->out_plus_one == 0)
            return -1;
        if (memcmp(d->key, key, KEY_BYTES) == 0)
            return d->out_plus_one - 1;
    }
}

int fast_decide(struct fast_hub *hub, const uint8_t *key, int out)
{
    if (link_at(hub, out) == NULL || key == NULL)
        return -EINVAL;
    if (hub->decision_count >= FAST_MAX_DECISIONS)
        fast_forget(hub);
    for (size_t i = slot_of(key);; i = (i + 1) & (FAST_DECISIONS - 1)) {
        struct decision *d = &hub->decisions[i];
        if (d->out_plus_one == 0) {
            memcpy(d->key, key, KEY_BYTES);
            hub->decision_count++;
        } else if (memcmp(d->key, key, KEY_BYTES) != 0) {
            continue;
        }
        d->out_plus_one = out + 1;
        return 0;
    }
}

void fast_forget(struct fast_hub *hub)
{
    if (hub == NULL)
        return;
    memset(hub->decisions, 0, sizeof hub->decisions);
    hub->decision_count = 0;
}

int fast_decisions(const struct fast_hub *hub)
{
    return hub == NULL ? 0 : hub->decision_count;
}

/* -- captures --------------------------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t written = write(fd, data, size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += written;
        size -= (size_t)written;
    }
    return 0;
}

static void write_out(struct fast_link *l)
{
    if (l->capture_length == 0)
        return;
    int status = write_all(l->capture_fd, l->capture, l->capture_length);
    if (status < 0 && l->capture_errno == 0)
        l->capture_errno = -status;
    l->capture_length = 0; /* written or, on an error, dropped: the buffer stays bounded */
}

int fast_capture(struct fast_hub *hub, int link, int fd)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL)
        return -EINVAL;
    if (fd >= 0 && l->capture == NULL) {
        l->capture = malloc(CAPTURE_CAPACITY);
        if (l->capture == NULL)
            return -ENOMEM;
    }
    l->capture_fd = fd;
    l->capture_length = 0;
    l->capture_errno = 0;
    return 0;
}

/* `size` is at most FAST_MAX_PACKET, and the buffer holds less than a chunk between records:
 * the record fits. */
static void record(struct fast_link *l, const uint8_t *header, const uint8_t *packet, size_t size)
{
    memcpy(l->capture + l->capture_length, header, RECORD_HEADER);
    memcpy(l->capture + l->capture_length + RECORD_HEADER, packet, size);
    l->capture_length += RECORD_HEADER + size;
    l->counters.pcap_frames++;
    if (l->capture_length >= FAST_CAPTURE_CHUNK)
        write_out(l);
}

int fast_record(struct fast_hub *hub, int link, const uint8_t *header, const uint8_t *packet,
                size_t size)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL || l->capture_fd < 0 || size > FAST_MAX_PACKET)
        return -EINVAL;
    record(l, header, packet, size);
    return 0;
}

int fast_flush(struct fast_hub *hub, int link)
{
    struct fast_link *l = link_at(hub, link);
    if (l == NULL)
        return -EINVAL;
    if (l->capture_fd >= 0)
        write_out(l);
    int error = l->capture_errno;
    l->capture_errno = 0;
    return -error;
}

static void put_le32(uint8_t *at, uint32_t value)
{
    at[0] = (uint8_t)value;
    at[1] = (uint8_t)(value >> 8);
    at[2] = (uint8_t)(value >> 16);
    at[3] = (uint8_t)(value >> 24);
}

/* capture.py record_header, stamped now (CLOCK_REALTIME: what time.time_ns reads). */
static void record_header(uint8_t *header, size_t size)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    put_le32(header, (uint32_t)now.tv_sec);
    put_le32(header + 4, (uint32_t)(now.tv_nsec / 1000));
    put_le32(header + 8, (uint32_t)size);
    put_le32(header + 12, (uint32_t)size);
}

/* -- forwarding ------------------------------------------------------------------------------- */

/* The link that packet[0:size], arrived on link `in`, leaves by if the fast path may take it:
 * the link Router.forward would return having done nothing but decrement the Hop Limit (see
 * Router.decisions), whose down direction is transparent and which can send now. Otherwise -1,
 * and Python handles the packet. */
static int fast_target(struct fast_hub *hub, int in, const uint8_t *packet, size_t size)
{
    if (size < IPV6_HEADER || packet[0] >> 4 != 6 || packet[HOP_LIMIT] <= 1)
        return -1;
    if (hub->links[in].pinned || !hub->links[in].up_transparent)
        return -1;
    int out = lookup(hub, packet + ADDRESSES);
    if (out < 0 || out == in)
        return -1;
    const struct fast_link *target = &hub->links[out];
    if (!target->down_transparent || target->fd < 0)
        return -1;
    if (target->udp && target->endpoint.ss_family == AF_UNSPEC)
        return -1;
    return out;
}

static ssize_t send_packet(const struct fast_link *l, const uint8_t *packet, size_t size)
{
    ssize_t sent;
    do {
        if (l->udp)
            sent = sendto(l->fd, packet, size, 0, (const struct sockaddr *)&l->endpoint,
                          l->endpoint_length);
        else
            sent = write(l->fd, packet, size);
    } while (sent < 0 && errno == EINTR);
    return sent;
}

/* The packets queued for UDP link `l`, from packet `from` on, as its batch's messages to its
 * node's endpoint (udp_runs.h). */
static int group_runs(struct fast_link *l, int from)
{
    struct batch *batch = l->batch;
    const struct udp_runs runs = {batch->run_messages, batch->run_controls, batch->run_first,
                                  batch->run_count};
    return udp_runs_group(&runs, batch->out_vectors, from, batch->out_count, l->gso,
                          &l->endpoint, l->endpoint_length);
}

/* Write the packets queued for UDP link `l` (sendmmsg) and capture those that left. One that
 * the socket refuses (a full buffer) is dropped and counted and the rest are tried, as one
 * sendto per packet would. A socket that refuses segmentation offload (EIO, EINVAL: a kernel
 * or route without it) is written packet by packet from then on. */
static void flush(struct fast_link *l)
{
    struct batch *batch = l->batch;
    int runs = group_runs(l, 0);
    int done = 0;
    while (done < runs) {
        int sent = sendmmsg(l->fd, batch->run_messages + done, (unsigned)(runs - done), 0);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (l->gso && udp_runs_refused(batch->run_count[done], errno)) {
                l->gso = 0; /* no offload here: the rest again, one message per packet */
                runs = group_runs(l, batch->run_first[done]);
                done = 0;
                continue;
            }
            l->counters.send_errors += (uint64_t)batch->run_count[done];
            done++;
            continue;
        }
        if (l->capture_fd >= 0)
            for (int r = done; r < done + sent; r++)
                for (int i = batch->run_first[r];
                     i < batch->run_first[r] + batch->run_count[r]; i++)
                    record(l, batch->out_headers[i], batch->out_vectors[i].iov_base,
                           batch->out_vectors[i].iov_len);
        done += sent;
    }
    batch->out_count = 0;
}

static void flush_all(struct fast_hub *hub)
{
    for (int i = 0; i < hub->link_count; i++)
        if (hub->links[i].batch != NULL && hub->links[i].batch->out_count > 0)
            flush(&hub->links[i]);
}

/* Queue packet[0:size] (in an arrival link's slot) for UDP link `l`, captured with `header`
 * once sent. */
static void queue(struct fast_link *l, uint8_t *packet, size_t size, const uint8_t *header)
{
    struct batch *batch = l->batch;
    if (batch->out_count == BATCH)
        flush(l);
    int i = batch->out_count++;
    batch->out_vectors[i].iov_base = packet;
    batch->out_vectors[i].iov_len = size;
    if (l->capture_fd >= 0) /* else `header` was not stamped */
        memcpy(batch->out_headers[i], header, RECORD_HEADER);
}

/* Read up to `want` datagrams from UDP link `l` into its slots: how many (0: none now), or -1
 * on a receive error. */
static int receive_batch(struct fast_link *l, int want)
{
    struct batch *batch = l->batch;
    if (want > BATCH)
        want = BATCH;
    for (int i = 0; i < want; i++)
        batch->in_messages[i].msg_hdr.msg_namelen = sizeof batch->sources[i];
    int got;
    do
        got = recvmmsg(l->fd, batch->in_messages, (unsigned)want, MSG_DONTWAIT, NULL);
    while (got < 0 && errno == EINTR);
    batch->in_next = 0;
    batch->in_count = got > 0 ? got : 0;
    if (got < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    return got;
}

int fast_drain(struct fast_hub *hub, int link, int budget, struct fast_punt *punt)
{
    struct fast_link *in = link_at(hub, link);
    punt->used = 0;
    if (in == NULL || in->fd < 0)
        return FAST_DONE;
    struct batch *batch = in->batch;
    uint32_t used = 0;
    /* Past the budget, datagrams read ahead are still processed: once read, the socket may not
     * become readable again to bring us back for them. */
    while (used < (uint32_t)budget || (batch != NULL && batch->in_next < batch->in_count)) {
        uint8_t *packet;
        size_t size;
        const struct sockaddr_storage *source = NULL;
        if (batch != NULL) {
            if (batch->in_next == batch->in_count) {
                flush_all(hub); /* the packets queued point into the slots read next */
                int got = receive_batch(in, budget - (int)used);
                if (got == 0)
                    break;
                if (got < 0) {
                    in->counters.receive_errors++;
                    used++;
                    continue;
                }
            }
            int i = batch->in_next++;
            packet = batch->in_vectors[i].iov_base;
            size = batch->in_messages[i].msg_len;
            source = &batch->sources[i];
        } else {
            ssize_t got = read(in->fd, hub->buffer, FAST_MAX_PACKET);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    in->counters.receive_errors++; /* the device is down: wait for the next
                                                    * readable event */
                break;
            }
            if (got == 0)
                break;
            packet = hub->buffer;
            size = (size_t)got;
        }
        used++;
        int stranger = source != NULL && !is_endpoint(in, source);
        int out = stranger ? -1 : fast_target(hub, link, packet, size);
        if (out < 0) {
            flush_all(hub); /* what C forwarded leaves before what Python sends next */
            if (packet != hub->buffer)
                memcpy(hub->buffer, packet, size);
            punt->size = (uint32_t)size;
            punt->used = used;
            punt->stranger = stranger;
            if (source != NULL)
                describe_source(source, punt);
            return FAST_PUNT;
        }
        struct fast_link *target = &hub->links[out];
        uint8_t header[RECORD_HEADER];
        if (in->capture_fd >= 0 || target->capture_fd >= 0)
            record_header(header, size);
        in->counters.up_packets++;
        in->counters.up_bytes += size;
        if (in->capture_fd >= 0)
            record(in, header, packet, size);
        packet[HOP_LIMIT]--;
        target->counters.down_packets++;
        target->counters.down_bytes += size;
        if (target->batch != NULL && batch != NULL) { /* the packet stays in its slot till sent */
            queue(target, packet, size, header);
            continue;
        }
        if (send_packet(target, packet, size) < 0) {
            target->counters.send_errors++;
            continue;
        }
        if (target->capture_fd >= 0)
            record(target, header, packet, size);
    }
    flush_all(hub);
    punt->used = used;
    return FAST_DONE;
}

/* -- waiting (as mip6/runtime/csrc/daemon_fast.c dfast_wait) -------------------------------- */

/* The link reading `fd`, or -1: the caller's descriptor. */
static int link_of_fd(const struct fast_hub *hub, int fd)
{
    for (int i = 0; i < hub->link_count; i++)
        if (hub->links[i].fd == fd)
            return i;
    return -1;
}

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

#define WAIT_EVENTS 64

int fast_wait(struct fast_hub *hub, int epfd, int timeout_ms, int budget, struct fast_ready *ready,
              int max)
{
    if (hub == NULL || ready == NULL || max <= 0 || budget <= 0)
        return -EINVAL;
    if (hub->pending_link >= 0) { /* not taken yet: the caller's handler has not run */
        ready[0].fd = hub->links[hub->pending_link].fd;
        ready[0].events = EPOLLIN;
        return 1;
    }
    struct epoll_event events[WAIT_EVENTS];
    int capacity = max < WAIT_EVENTS ? max : WAIT_EVENTS; /* one entry per event at most */
    int64_t deadline = timeout_ms > 0 ? monotonic_ns() + (int64_t)timeout_ms * 1000000 : 0;
    int wait_ms = timeout_ms;
    for (;;) {
        int got = epoll_wait(epfd, events, capacity, wait_ms);
        if (got < 0)
            return errno == EINTR ? 0 : -errno;
        int count = 0;
        for (int e = 0; e < got; e++) {
            int fd = events[e].data.fd;
            int link = link_of_fd(hub, fd);
            uint32_t flags = events[e].events;
            /* a link's readiness is ours; anything else about it (EPOLLERR, EPOLLHUP) and every
             * other descriptor are the caller's, and so is every link once the buffer holds a
             * punt */
            if (link < 0 || (flags & ~(uint32_t)EPOLLIN) != 0 || hub->pending_link >= 0) {
                ready[count].fd = fd;
                ready[count].events = flags;
                count++;
                continue;
            }
            if (fast_drain(hub, link, budget, &hub->pending) == FAST_PUNT) {
                /* first, so its handler takes it before any other reads into the buffer */
                hub->pending_link = link;
                memmove(&ready[1], &ready[0], (size_t)count * sizeof *ready);
                ready[0].fd = fd;
                ready[0].events = flags;
                count++;
            }
        }
        if (count > 0 || timeout_ms == 0)
            return count;
        if (timeout_ms > 0) { /* rounded up, so the caller's timer is never woken early */
            int64_t left = deadline - monotonic_ns();
            if (left <= 0)
                return 0;
            wait_ms = (int)((left + 999999) / 1000000);
        }
    }
}

int fast_take_punt(struct fast_hub *hub, int link, struct fast_punt *punt)
{
    if (hub == NULL || punt == NULL || hub->pending_link < 0 || hub->pending_link != link)
        return FAST_DONE;
    *punt = hub->pending;
    hub->pending_link = -1;
    return FAST_PUNT;
}

const struct fast_counters *fast_counters(const struct fast_hub *hub, int link)
{
    if (hub == NULL || link < 0 || link >= hub->link_count)
        return NULL;
    return &hub->links[link].counters;
}
