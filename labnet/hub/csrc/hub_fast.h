/* The hub's fast path (labnet/hub/server.py, "Path of a packet"): forwards the packets whose
 * route is already decided and whose two link directions are transparent, in C, and hands
 * every other packet back to Python, which stays the reference implementation.
 *
 * The hub (Python) owns the sockets, devices, capture files and the receive buffer; this code
 * holds copies of what it needs per link (descriptor, endpoint, whether the down direction is
 * transparent, whether the link is pinned), a table of routing decisions that Python fills
 * from its Router, the capture buffers and the counters of the packets it forwarded. */

#ifndef HUB_FAST_H
#define HUB_FAST_H

#include <stddef.h>
#include <stdint.h>

#define FAST_MAX_PACKET 65535
#define FAST_CAPTURE_CHUNK 262144 /* capture.py CHUNK_BYTES: a buffer is written at this size */
#define FAST_DECISIONS 8192       /* table slots (a power of two) */
#define FAST_MAX_DECISIONS 4096   /* entries before the table is emptied (a bound, as Router's) */

/* fast_drain results */
enum fast_status {
    FAST_DONE = 0,  /* nothing more to read now (EAGAIN, a receive error) or budget spent */
    FAST_PUNT = 1,  /* one packet for Python: fast_punt says which */
};

/* What C counted for one link; the hub adds these to its own counters. */
struct fast_counters {
    uint64_t up_packets;     /* crossed the (transparent) up direction: in = out */
    uint64_t up_bytes;
    uint64_t down_packets;   /* crossed the (transparent) down direction: in = out */
    uint64_t down_bytes;
    uint64_t send_errors;    /* write or sendto failed (a full queue, a device that is down) */
    uint64_t receive_errors; /* read or recvfrom failed other than EAGAIN */
    uint64_t pcap_frames;    /* capture records, Python's included (fast_record) */
};

/* A packet fast_drain left to Python, in the receive buffer. */
struct fast_punt {
    uint32_t size;        /* its length in bytes */
    uint32_t used;        /* datagrams read by this call, the punted one included */
    int stranger;         /* UDP: it came from another address than the link's endpoint */
    /* the sender (UDP links): family AF_INET or AF_INET6, address (4 or 16 bytes), port,
     * flow information and scope, in host byte order */
    int family;
    uint8_t address[16];
    uint16_t port;
    uint32_t flowinfo;
    uint32_t scope_id;
};

/* A descriptor fast_wait leaves to the caller's loop, with its epoll events. */
struct fast_ready {
    int32_t fd;
    uint32_t events;
};

struct fast_hub;

/* A hub of `links` links reading into `buffer` (`capacity` bytes, at least FAST_MAX_PACKET,
 * owned by the caller and kept alive as long as the hub). NULL when out of memory. */
struct fast_hub *fast_new(int links, uint8_t *buffer, size_t capacity);
/* Frees the hub's memory; closes nothing (the descriptors are the caller's). */
void fast_free(struct fast_hub *hub);

/* Link `link` reads and writes descriptor `fd`: a UDP socket if `udp` (read and written up to
 * 32 datagrams per system call), else a TUN device. `pinned`: its packets never take the
 * decision table. Returns 0, -EINVAL for a bad link, or -ENOMEM. */
int fast_set_link(struct fast_hub *hub, int link, int fd, int udp, int pinned);
/* Whether the link's down direction (hub to node) is transparent (no emulation). */
int fast_set_down_transparent(struct fast_hub *hub, int link, int transparent);
/* Whether the link's up direction (node to hub) is transparent: C forwards only packets from
 * such links; the others' are all punted (an emulated up direction holds a copy of each packet,
 * in Python). */
int fast_set_up_transparent(struct fast_hub *hub, int link, int transparent);
/* The node's UDP address (family 0: not known), fields as in struct fast_punt. */
int fast_set_endpoint(struct fast_hub *hub, int link, int family, const uint8_t *address,
                      uint16_t port, uint32_t flowinfo, uint32_t scope_id);

/* Packets from source and destination address `key` (32 bytes: IPv6 header bytes 8-39) leave
 * on link `out` (>= 0), unless they arrive on it or on a pinned link. */
int fast_decide(struct fast_hub *hub, const uint8_t *key, int out);
/* Forget every decision (the routes changed). */
void fast_forget(struct fast_hub *hub);
/* Decisions in the table, for tests. */
int fast_decisions(const struct fast_hub *hub);

/* Capture link `link`'s packets to descriptor `fd` (a pcap file whose header is written;
 * -1: stop capturing, after fast_flush). Returns 0, -ENOMEM or -EINVAL. */
int fast_capture(struct fast_hub *hub, int link, int fd);
/* Append one capture record: 16-byte record header `header` and `size` bytes of `packet`;
 * writes the buffer out at FAST_CAPTURE_CHUNK. Returns 0 or -errno of a failed write. */
int fast_record(struct fast_hub *hub, int link, const uint8_t *header, const uint8_t *packet,
                size_t size);
/* Write the link's buffered records. Returns 0 or -errno (the records are dropped then). */
int fast_flush(struct fast_hub *hub, int link);

/* Forward packets read from link `link`, reading at most `budget` datagrams (a UDP link's read
 * ahead are all processed: FAST_DONE leaves none). Returns FAST_DONE, or FAST_PUNT with `punt`
 * filled (the packet is in the buffer, untouched; what C forwarded before it is sent). */
int fast_drain(struct fast_hub *hub, int link, int budget, struct fast_punt *punt);

/* Wait on the caller's epoll descriptor `epfd` (level-triggered, data.fd the descriptor) for at
 * most `timeout_ms` (-1: no limit, 0: look once). A readable link is drained here (fast_drain, `budget` datagrams per readiness) and waited on
 * again, without returning, so a packet C forwards never wakes the caller. Returns, as soon as
 * there is any, what the caller must see: descriptors that are not such links, a link's other
 * events (an error, a hang-up) and a link whose drain punted a packet (kept for fast_take_punt,
 * and this call returns at once; that link first, so that its handler runs before any other
 * reads into the buffer); at most `max` entries in `ready` (the count), 0 when the time
 * is up or a signal came (EINTR: the caller's handlers run), -errno when epoll_wait fails
 * otherwise. A punt not yet taken is reported again before anything is read. */
int fast_wait(struct fast_hub *hub, int epfd, int timeout_ms, int budget, struct fast_ready *ready,
              int max);
/* The packet fast_wait punted from link `link`, if there is one: FAST_PUNT with `punt` filled
 * and the packet in the buffer (as fast_drain leaves it), else FAST_DONE. */
int fast_take_punt(struct fast_hub *hub, int link, struct fast_punt *punt);

const struct fast_counters *fast_counters(const struct fast_hub *hub, int link);

#endif
