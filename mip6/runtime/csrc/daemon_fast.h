/* The daemon's fast path (mip6/runtime/fast.py): carries the packets of established traffic
 * whose fate the role engine has already decided, in C, and hands every other packet back to
 * Python, where the engine stays the reference implementation and owns every decision.
 *
 * The daemon (Python) owns the descriptors and the receive buffer; this code holds, per link,
 * its descriptor and counters, and a table of decisions the engine gave for packets that
 * arrive by one ingress (the node's upper layer, or the network) with one source and one
 * destination address: leave on link L unchanged, with a type 2 routing header inserted, or
 * with the Home Address option removed, or delivered to the daemon's own TCP host (a member's
 * connections, dfast_set_host). A decision applies only to packets of the shape its action
 * expects, carrying TCP, UDP or ICMPv6 Echo; anything else is punted. */

#ifndef DAEMON_FAST_H
#define DAEMON_FAST_H

#include <stddef.h>
#include <stdint.h>

#define DFAST_MAX_PACKET 65575     /* an IPv6 header and the largest non-jumbo payload */
#define DFAST_BUFFER 65639         /* what dfast_transform may write: 64 bytes of headers more */
#define DFAST_SLOTS 8192           /* table slots (a power of two) */
#define DFAST_MAX_DECISIONS 4096   /* decisions before dfast_decide refuses (-ENOSPC) */
#define DFAST_BATCH 32             /* a datagram socket's packets per recvmmsg and sendmmsg */

/* where a packet came from: the two inputs of the engine contract */
enum dfast_ingress {
    DFAST_UPPER = 0,   /* the node's upper layer (engine.send) */
    DFAST_NETWORK = 1, /* a network link (engine.handle_packet) */
    DFAST_TUNNEL = 2,  /* out of a tunnel: what a DFAST_DECAPSULATE decision took out */
};

/* what a decision does to a packet (mip6.core.datapath.FastAction) */
enum dfast_action {
    DFAST_FORWARD = 0,                    /* unchanged */
    DFAST_INSERT_TYPE2_ROUTING = 1,       /* RFC 3775 9.3.2: destination := `address` */
    DFAST_REMOVE_HOME_ADDRESS_OPTION = 2, /* RFC 3775 9.3.1: source := `address`; a packet
                                             without extension headers is forwarded */
    DFAST_INSERT_HOME_ADDRESS_OPTION = 3, /* RFC 3775 11.3.1: source := `address` */
    DFAST_REMOVE_TYPE2_ROUTING = 4,       /* RFC 3775 11.3.3: destination := `address`; a
                                             packet without extension headers is forwarded */
    DFAST_ENCAPSULATE = 5,                /* RFC 2473 3: from `source` to `address` */
    DFAST_ENCAPSULATE_FORWARDED = 6,      /* the same, the inner Hop Limit decremented (3.1) */
    DFAST_DECAPSULATE = 7 /* RFC 2473 3: the inner packet, from source `address` (RFC 3775
                             10.4.5: the home address; unspecified: any), then its own
                             DFAST_TUNNEL decision */
};

/* dfast_drain results; dfast_transform returns DFAST_PUNT (negative) for a packet it leaves */
enum dfast_status {
    DFAST_DONE = 0, /* nothing more to read now (EAGAIN, a receive error) or budget spent */
    DFAST_PUNT = -1 /* one packet for Python: in the buffer, struct dfast_punt says its size */
};

/* What C counted for one link. */
struct dfast_counters {
    uint64_t in_packets;     /* read, then carried by a decision */
    uint64_t in_bytes;
    uint64_t out_packets;    /* written by the fast path */
    uint64_t out_bytes;
    uint64_t punted;         /* read, then left to Python */
    uint64_t send_errors;    /* a write that failed (a full queue, a device that is down) */
    uint64_t receive_errors; /* a read that failed other than EAGAIN */
    uint64_t offload_frames; /* an offloading TUN device's reads of a segment to cut */
    uint64_t offload_errors; /* such reads dropped: offloads not asked for, bad offsets */
    uint64_t coalesced;      /* packets written to an offloading TUN device inside a frame of
                                several (one TCP segment for the kernel to take whole) */
    uint64_t segmented;      /* packets written to a UDP socket inside a run the kernel cut
                                into datagrams (UDP segmentation offload) */
};

/* What one decision carried since it was installed. */
struct dfast_usage {
    uint64_t packets;
    uint64_t bytes;
    double last_used; /* CLOCK_MONOTONIC seconds (Python's time.monotonic), 0: never */
};

struct dfast_punt {
    uint32_t size; /* the punted packet's length, in the buffer */
    uint32_t used; /* packets read by this call, the punted one included */
};

/* A descriptor dfast_wait leaves to the caller's event loop, with its epoll events. */
struct dfast_ready {
    int32_t fd;
    uint32_t events;
};

struct dfast;

/* Fast path state for `links` links (0 .. links-1) reading into `buffer` (`capacity` bytes,
 * at least DFAST_BUFFER, owned by the caller and kept alive as long as this). NULL when out
 * of memory or given bad arguments. */
struct dfast *dfast_new(int links, uint8_t *buffer, size_t capacity);
/* Frees the memory; closes nothing (the descriptors are the caller's). */
void dfast_free(struct dfast *fast);

/* Link `link` reads and writes `fd` (a TUN device or a connected datagram socket: every read
 * is one packet, every write sends one); `ingress` is what its packets are to the engine.
 * A `datagram_socket` is read and written in batches (recvmmsg, sendmmsg): -ENOMEM when
 * their buffers cannot be had. */
int dfast_set_link(struct dfast *fast, int link, int fd, int ingress, int datagram_socket);

/* Link `link` (a TUN device, set) was opened with IFF_VNET_HDR and TUNSETOFFLOAD(TUN_F_CSUM |
 * TUN_F_TSO6) (mip6/runtime/offload.py): every read is a virtio_net header and a packet that
 * may be a TCP segment to cut or have its checksum left to us. What a read gives is made into
 * whole packets (dfast_frame_packet) before anything else looks at them. What one dfast_drain
 * writes to it is coalesced where it can be: consecutive full-sized segments of one TCP
 * connection, headers equal but for the sequence number (PSH on the last), written as one
 * frame for the kernel to take as the segments it is (the reverse of a read: cutting the
 * frame with dfast_frame_packet gives them back, byte for byte); every other write gets a
 * header asking nothing. -ENOMEM, -EINVAL (a datagram socket, a link not set). */
int dfast_set_offload(struct dfast *fast, int link);

/* Packet `index` (0, 1, ...) of `frame` (`size` bytes: a virtio_net header and a packet, one
 * read of an offloading TUN device), written to `out` (`capacity` >= DFAST_MAX_PACKET): its
 * length; 0 when the frame has no packet `index`; -EINVAL for a frame the offloads asked for
 * cannot make (another GSO type, offsets outside the packet). As mip6.runtime.offload.packets. */
int dfast_frame_packet(const uint8_t *frame, size_t size, uint32_t index, uint8_t *out,
                       size_t capacity);

/* Packets from `ingress` with source and destination `key` (32 bytes: IPv6 header bytes 8-39)
 * take `action` with `address` (16 bytes; with `source` and `hop_limit` the outer header's of
 * an encapsulation) and leave on link `out`; `verify`: only when their upper-layer header
 * checks as the engine's parser checks it (checksum, lengths, TCP options); `expires`: until
 * CLOCK_MONOTONIC `expires` seconds (then they are punted: the engine expires the binding).
 * Returns the decision's id (>= 0, for dfast_usage), -ENOSPC when the table is full, -EINVAL
 * for a bad argument. A second decision for a key replaces the first. */
int dfast_decide(struct dfast *fast, int ingress, const uint8_t *key, int action,
                 const uint8_t *address, const uint8_t *source, int hop_limit, int out,
                 int verify, double expires);
/* Forget every decision (the engine's state changed); ids start again from 0. */
void dfast_forget(struct dfast *fast);
int dfast_decisions(const struct dfast *fast);
const struct dfast_usage *dfast_usage(const struct dfast *fast, int id);

/* What the decisions make of `packet` (`size` bytes) from `ingress` at CLOCK_MONOTONIC `now`:
 * the length of the packet written to `out` (`capacity` >= DFAST_BUFFER bytes), with `*link`
 * the link it leaves on and its decision's usage counted, or DFAST_PUNT. No I/O: the tests
 * hold this to the engine packet by packet. */
int dfast_transform(struct dfast *fast, int ingress, const uint8_t *packet, size_t size,
                    uint8_t *out, size_t capacity, double now, int *link);

/* Read link `link` until EAGAIN or `budget` packets (and those a datagram socket read ahead),
 * writing out every packet a decision carries; everything carried is written before this
 * returns. Returns DFAST_DONE, or DFAST_PUNT with the packet left in the buffer, untouched
 * (the packets read ahead after it wait for the next call). */
int dfast_drain(struct dfast *fast, int link, int budget, struct dfast_punt *punt);

/* The event loop's wait, with the links read here: epoll_wait on `epfd` (the loop's epoll
 * descriptor, where the links' descriptors are registered with their own fd as data) for at
 * most `timeout_ms` (-1: no limit; 0: once, without waiting). A readable link is drained here
 * (dfast_drain, `budget` packets per readiness) and waited on again, without returning, so
 * established traffic never wakes the caller. Returns, as soon as there is any, what the
 * caller must see: descriptors that are not links, a link's other events (an error, a hang-up),
 * a link whose drain punted a packet (kept for dfast_take_punt, and this call returns at
 * once) and one whose packets touched the host's connections (dfast_host_touched); at most `max` entries in `ready` (the count), 0 when the time is up or a signal came
 * (EINTR: the caller's handlers run), -errno when epoll_wait fails otherwise. A punt not yet
 * taken is reported again before anything is read. */
int dfast_wait(struct dfast *fast, int epfd, int timeout_ms, int budget, struct dfast_ready *ready,
               int max);
/* The packet dfast_wait punted from link `link`, if there is one: DFAST_PUNT with `punt`
 * filled and the packet in the buffer (as dfast_drain leaves it), else DFAST_DONE. */
int dfast_take_punt(struct dfast *fast, int link, struct dfast_punt *punt);

const struct dfast_counters *dfast_counters(const struct dfast *fast, int link);

/* -- the daemon's own TCP host (a member's tcp_migrate stack: mip6/runtime/fast.py FastHost) -- */

#define DFAST_HOST_CONNECTIONS 4096 /* connections the host's table holds at most */
#define DFAST_HOST_KEY 36           /* local address, local port, remote address, remote port */
#define DFAST_HOST_TOUCHED 256      /* connections touched before Python must look at them */
#define DFAST_HOST_LISTENERS 64     /* listeners a SYN may open a connection of here */

/* what a connection saw since Python last looked (struct dfast_touched.flags) */
enum dfast_touch {
    DFAST_TOUCH_INPUT = 1,    /* segments given to it (tcp_input) */
    DFAST_TOUCH_RECEIVED = 2, /* RCV.NXT moved: data (or a FIN) for its application */
    DFAST_TOUCH_OPENED = 4    /* opened here from a SYN to a listener: the caller's to adopt */
};

struct dfast_touched {
    int32_t id;       /* the caller's, from dfast_host_add; an opened one's, negative, C's */
    uint32_t flags;
    uintptr_t conn;   /* an opened one's struct tcp_conn *, from `conn_new` */
    int32_t listener; /* an opened one's listener, the caller's id from dfast_host_listen */
};

/* What the host counted. */
struct dfast_host_counters {
    uint64_t segments;     /* given to a registered connection */
    uint64_t bad_checksum; /* of those, refused by tcp_input for their checksum */
    uint64_t answers;      /* segments the connections sent back from here */
    uint64_t answers_lost; /* of those, dropped: their decision would not take them */
    uint64_t punted;       /* a delivery left to Python: no connection, frozen, no way back */
    uint64_t opened;       /* connections opened here from a SYN (their SYN-ACK sent) */
};

/* Link `link` is the daemon's own TCP host, not a descriptor: a decision that delivers to it
 * hands the TCP segment of a packet without extension headers to the connection registered
 * (dfast_host_add) and carried for its 4-tuple, through tcp_migrate's `input` (tcp_input);
 * what the connection owes then (`output`, tcp_output) leaves at once as the packet the
 * decision for UPPER from its local to its remote address makes of it. A SYN for no registered
 * 4-tuple, to a listener (dfast_host_listen) while opens are allowed (dfast_host_opens), opens
 * a connection here as the stack would (`conn_new`, tcp_migrate's conn_memory_new; the stack's
 * initial sequence number and timestamp offset, keyed BLAKE2s with `key`, `key_size` bytes;
 * `open_passive`, tcp_open_passive) and sends its SYN-ACK; the caller adopts it
 * (DFAST_TOUCH_OPENED). Every other packet (a 4-tuple registered but not carried, a frozen
 * connection, answers without a decision to take them) is punted, untouched. The functions are
 * given as the addresses of tcp_migrate's extension's own (one copy of the TCP code and of its
 * memory runs every connection). -EINVAL, -ENOMEM. */
int dfast_set_host(struct dfast *fast, int link, uintptr_t input, uintptr_t output,
                   uintptr_t conn_new, uintptr_t conn_free, uintptr_t open_passive,
                   const uint8_t *key, size_t key_size);
/* how a registered connection's segments go (dfast_host_add's `carried`) */
enum dfast_carry {
    DFAST_CARRY_NONE = 0, /* punted: the stack's alone */
    DFAST_CARRY_ALL = 1,
    DFAST_CARRY_ACKS = 2 /* all but those with data or a FIN, which the stack must see before
                            they are acknowledged (a replica covers them first) */
};

/* The stack's connection `conn` (a struct tcp_conn *) holds the 4-tuple `key` (DFAST_HOST_KEY
 * bytes, ports in network byte order): carried (enum dfast_carry), C gives it its segments from
 * now on, its answers cut to packets of at most `mtu` bytes after the decision's headers; not
 * carried, its segments are punted (and a SYN for its 4-tuple opens nothing here). Replaces an
 * earlier registration of `key`. -ENOSPC (full), -EINVAL (no host). */
int dfast_host_add(struct dfast *fast, const uint8_t *key, uintptr_t conn, int32_t id, int mtu,
                   int carried);
/* The stack listens on `address` (16 bytes; unspecified: every local address) `port`: a SYN to
 * it may open a connection here with `config` (a struct tcp_config *, copied; its MSS lowered
 * to what `mtu` leaves after the way back's headers, as the stack's mss_limit), rings of
 * `send_capacity` and `receive_capacity` bytes, at most `allowance` more times (what its
 * backlog and the table leave) until called again; `id` names it in the touched records.
 * -ENOSPC (DFAST_HOST_LISTENERS), -EINVAL. */
int dfast_host_listen(struct dfast *fast, const uint8_t *address, int port, uintptr_t config,
                      size_t send_capacity, size_t receive_capacity, int32_t id,
                      int32_t allowance, int mtu);
/* The listener on `address` `port` opens nothing more here (0, or -ENOENT). */
int dfast_host_unlisten(struct dfast *fast, const uint8_t *address, int port);
/* Whether a SYN may open a connection here at all (the engine looks at none then). */
void dfast_host_opens(struct dfast *fast, int allowed);
/* `key`'s connection takes nothing more here (0, or -ENOENT: none was registered). */
int dfast_host_remove(struct dfast *fast, const uint8_t *key);
int dfast_host_connections(const struct dfast *fast);
/* What `key`'s connection owes at `now_ms` (the application wrote, a timer fired) leaves as its
 * answers to segments do, written before this returns: 0; DFAST_PUNT when no decision takes
 * them now (the caller sends them), -ENOENT (not registered). */
int dfast_host_send(struct dfast *fast, const uint8_t *key, uint64_t now_ms);
/* The connections touched since the last call, at most `max` into `out` (the count), and
 * forgotten. */
int dfast_host_touched(struct dfast *fast, struct dfast_touched *out, int max);
const struct dfast_host_counters *dfast_host_counters(const struct dfast *fast);

/* -- the proxy's relay (mip6/apps/proxy.py; mip6/runtime/fast.py FastRelays) ---------------------
 *
 * A relay carries the HTTP/1.1 exchanges of one carried connection of the host (the client's)
 * to and from a connected stream socket (the proxy's connection to its server), in C: the
 * client's bytes are read out of the connection as they arrive, each request's head is parsed
 * whole by llhttp (httptools' copy, dfast_relay_parser) and checked as mip6.apps.http_boundary
 * checks it before a byte of it is forwarded, and its body follows as llhttp frames it; the
 * server's answer is framed the same way and written into the connection, whose segments leave
 * at once. One exchange at a time, as the proxy's: the next request is read only once the last
 * response has ended. Anything else stops the relay and leaves the connection to Python, where
 * the proxy goes on from the state the relay stopped in (struct dfast_relay_state and the bytes
 * dfast_relay_bytes gives). */

#define DFAST_RELAYS 1024        /* relays at once */
#define DFAST_RELAY_BUFFER 65536 /* bytes each way a relay holds */
#define DFAST_RELAY_MAX_HEAD 32768 /* a longer head is Python's (http_boundary.MAX_HEAD) */
#define DFAST_LLHTTP_FUNCTIONS 7 /* dfast_relay_parser's addresses */

/* why a relay stopped */
enum dfast_relay_stop {
    DFAST_RELAY_RUNNING = 0,
    DFAST_RELAY_CLIENT_CLOSED = 1, /* the client's FIN, or its connection closed */
    DFAST_RELAY_SERVER_CLOSED = 2, /* the server's end of stream, or an error on its socket */
    DFAST_RELAY_CLOSE = 3,         /* an exchange ended the connection (Connection: close, a body
                                      that ran until the server's close, bytes past a response) */
    DFAST_RELAY_REQUEST = 4,       /* a request head the relay does not forward (held, whole) */
    DFAST_RELAY_RAW = 5,           /* a message llhttp refused after its head went on: what is
                                      left goes as it is */
    DFAST_RELAY_GONE = 6,          /* the connection left the host's table */
    DFAST_RELAY_STOPPED = 7        /* dfast_relay_stop while it ran */
};

/* which bytes dfast_relay_bytes copies */
enum dfast_relay_bytes {
    DFAST_RELAY_HELD = 0,     /* read from the client and not written to the server */
    DFAST_RELAY_RETAINED = 1, /* the request under way, whole, when `retry` */
    DFAST_RELAY_DOWN = 2      /* read from the server and not given to the connection: the
                                 first `unrelayed` of them belong to the client's stream */
};

struct dfast_relay_state {
    int32_t reason;     /* enum dfast_relay_stop */
    int32_t idle;       /* no exchange under way (between a response's end and a request's) */
    int32_t answered;   /* a byte of the response to the request under way came */
    int32_t retry;      /* the server closed before answering the request under way, which
                           was forwarded whole and is kept (DFAST_RELAY_RETAINED) */
    int32_t method;     /* llhttp's method of the request under way (or the last one) */
    uint32_t held;      /* DFAST_RELAY_HELD's length */
    uint32_t retained;  /* DFAST_RELAY_RETAINED's length (0 unless `retry`) */
    uint32_t unrelayed; /* bytes of the response framed and not sent yet */
    uint32_t down;      /* DFAST_RELAY_DOWN's length (unrelayed and not framed) */
    uint64_t requests;  /* requests forwarded whole */
    uint64_t responses; /* final responses relayed whole */
    uint64_t up_bytes;  /* client to server */
    uint64_t down_bytes;
};

/* What the relays did, all of them since dfast_relay_parser. */
struct dfast_relay_counters {
    uint64_t started;
    uint64_t requests;  /* forwarded whole */
    uint64_t responses; /* final responses relayed whole */
    uint64_t stopped[8]; /* by enum dfast_relay_stop */
};

/* The relays' parser: llhttp's llhttp_init, llhttp_settings_init, llhttp_execute,
 * llhttp_finish, llhttp_resume, llhttp_should_keep_alive and llhttp_message_needs_eof at the
 * addresses in `functions` (DFAST_LLHTTP_FUNCTIONS), checked on known messages first. Returns
 * the descriptor of the relays' epoll set (the caller's loop watches it; dfast_wait handles
 * it), -ENOTSUP when the parser does not frame the known messages as llhttp 9 does (our
 * declarations of its layout do not match: no relay runs), -EINVAL, -ENOMEM, -errno. */
int dfast_relay_parser(struct dfast *fast, const uintptr_t *functions, uintptr_t send,
                       uintptr_t recv, uintptr_t recv_eof);
/* A relay between the host's connection `key` (registered, carried) and `fd` (a connected,
 * non-blocking stream socket, nothing of it unread), starting with `held` (`size` bytes the
 * client sent and nothing read yet, ahead of what the connection holds): its index (>= 0),
 * -ENOENT (no such connection carried), -EBUSY (it has a relay), -ENOSPC, -EINVAL. It may
 * forward and answer before this returns. */
int dfast_relay_start(struct dfast *fast, const uint8_t *key, int fd, const uint8_t *held,
                      size_t size);
/* Relay `index`'s state now (0), -EINVAL. */
int dfast_relay_state(struct dfast *fast, int index, struct dfast_relay_state *out);
/* Copies the bytes `which` (enum dfast_relay_bytes) of relay `index` to `out`: their length,
 * -ENOSPC when `capacity` is short, -EINVAL. */
int dfast_relay_bytes(struct dfast *fast, int index, int which, uint8_t *out, size_t capacity);
/* Relay `index`'s connection changed outside C (the stack took a segment C punted: data to
 * read, acknowledgements that made room to send): the relay goes on (0), -EINVAL. */
int dfast_relay_poke(struct dfast *fast, int index);
/* Relay `index` tells (dfast_relay_events) when it is next idle. */
int dfast_relay_notify_idle(struct dfast *fast, int index);
/* Relay `index` stops, if it runs, and is forgotten: its socket is the caller's again (0),
 * -EINVAL. */
int dfast_relay_stop(struct dfast *fast, int index);
/* The relays that stopped, or became idle after dfast_relay_notify_idle, since the last call:
 * at most `max` indexes into `out` (the count). */
int dfast_relay_events(struct dfast *fast, int32_t *out, int max);
const struct dfast_relay_counters *dfast_relay_counters(const struct dfast *fast);
/* Handles what the relays' sockets have now (the caller's loop saw the epoll set readable
 * outside dfast_wait): 1 when there is news for dfast_relay_events or dfast_host_touched. */
int dfast_relay_service(struct dfast *fast);

#endif
