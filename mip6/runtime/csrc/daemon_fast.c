/* The daemon's fast path: see daemon_fast.h, and mip6/runtime/fast.py for the Python around
 * it. What a decision does mirrors mip6.core.datapath; which packets it may take mirrors what
 * the engine's parser accepts (mip6.wire), so a packet taken here is one the engine would have
 * treated the same way, byte for byte. */

#define _GNU_SOURCE
#include "daemon_fast.h"
#include "blake2s.h"
#include "dfast_internal.h"
#include "tcp_conn.h" /* tcp_migrate's: the host's connections (see dfast_set_host) */
#include "udp_runs.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* RFC 8200 3: Version in the top 4 bits of byte 0, Payload Length at bytes 4-5, Next Header at
 * byte 6, Source Address at bytes 8-23, Destination Address at bytes 24-39. */
#define IPV6_HEADER 40
#define PAYLOAD_LENGTH 4
#define NEXT_HEADER 6
#define HOP_LIMIT 7
#define SOURCE 8
#define DESTINATION 24
#define ADDRESS 16
#define KEY_BYTES 33 /* ingress, then source and destination */

/* mip6.wire.protocols */
#define PROTO_TCP 6
#define PROTO_IPV6 41
#define PROTO_UDP 17
#define PROTO_ROUTING 43
#define PROTO_ICMPV6 58
#define PROTO_DESTINATION_OPTIONS 60

/* RFC 3775 6.3, 6.4: both headers the fast path adds or removes are 24 bytes (Hdr Ext Len 2) */
#define MIPV6_HEADER 24
/* mip6.core.datapath._HAO_PREFIX: after Next Header and Hdr Ext Len 2, a PadN of 4 bytes, then
 * Option Type 201, Option Length 16; the home address follows */
static const uint8_t HAO_PREFIX[6] = {0x01, 0x02, 0x00, 0x00, 0xc9, 0x10};

#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct decision {
    uint8_t key[KEY_BYTES];
    uint8_t action;
    uint8_t verify;
    uint8_t hop_limit; /* an encapsulation's outer Hop Limit */
    int32_t out;
    uint8_t address[ADDRESS];
    uint8_t source[ADDRESS]; /* an encapsulation's outer Source Address */
    double expires;
    struct dfast_usage usage;
};

/* A datagram socket's batches (recvmmsg, sendmmsg): DFAST_BATCH packets read ahead, and the
 * packets decisions sent it, written at once before dfast_drain returns. */
struct batch {
    uint8_t *in;  /* DFAST_BATCH slots of DFAST_MAX_PACKET bytes */
    struct mmsghdr in_messages[DFAST_BATCH];
    struct iovec in_vectors[DFAST_BATCH];
    int in_next, in_count; /* read ahead: slots in_next .. in_count-1 still to process */
    uint8_t *out; /* DFAST_BATCH slots of DFAST_BUFFER bytes */
    struct iovec out_vectors[DFAST_BATCH];
    int out_count;
    /* what flush writes: one message per run of packets (udp_runs.h) */
    struct mmsghdr run_messages[DFAST_BATCH];
    udp_runs_control run_controls[DFAST_BATCH];
    int run_first[DFAST_BATCH], run_count[DFAST_BATCH];
};

struct link {
    int fd; /* -1: not set (or the host's: no descriptor) */
    int host; /* the daemon's own TCP host (dfast_set_host) */
    int ingress;
    int gso; /* a UDP socket written with segmentation offload (udp_runs.h) */
    struct batch *batch; /* NULL: a TUN device, one read and one write per packet */
    uint8_t *frame;      /* an offloading TUN device's last read (NULL: none of that) */
    size_t frame_size;   /* 0: every packet of the frame handed on */
    uint32_t piece;      /* the frame's next packet */
    uint8_t *gro;        /* the frame being coalesced for an offloading TUN device: header, packet */
    size_t gro_size;     /* its packet's length; 0: none held */
    uint32_t gro_segments, gro_mss, gro_next; /* segments in it, their payload, next sequence */
    struct dfast_counters counters;
};

struct dfast {
    int link_count;
    struct link *links;
    uint8_t *buffer; /* the caller's: a punted packet stays there */
    uint8_t *out;    /* DFAST_BUFFER bytes: what a decision makes of a packet */
    int count;
    int pending_link;          /* a link whose punt dfast_wait left in the buffer; -1: none */
    struct dfast_punt pending; /* that punt */
    struct host *host;         /* NULL: no TCP host in this daemon */
    int touched_link;          /* a link whose packets touched the host's connections; -1 */
    struct relays *relays;     /* NULL: no relay parser (relay.c) */
    int32_t slots[DFAST_SLOTS]; /* id + 1 of the decision in the slot; 0: empty */
    struct decision decisions[DFAST_MAX_DECISIONS];
};

struct dfast *dfast_new(int links, uint8_t *buffer, size_t capacity)
{
    if (links <= 0 || buffer == NULL || capacity < DFAST_BUFFER)
        return NULL;
    struct dfast *fast = calloc(1, sizeof *fast);
    if (fast == NULL)
        return NULL;
    fast->links = calloc((size_t)links, sizeof *fast->links);
    fast->out = malloc(DFAST_BUFFER);
    if (fast->links == NULL || fast->out == NULL) {
        dfast_free(fast);
        return NULL;
    }
    fast->link_count = links;
    fast->buffer = buffer;
    fast->pending_link = -1;
    fast->touched_link = -1;
    for (int i = 0; i < links; i++)
        fast->links[i].fd = -1;
    return fast;
}

static void free_batch(struct batch *batch)
{
    if (batch == NULL)
        return;
    free(batch->in);
    free(batch->out);
    free(batch);
}

void dfast_free(struct dfast *fast)
{
    if (fast == NULL)
        return;
    for (int i = 0; fast->links != NULL && i < fast->link_count; i++) {
        free_batch(fast->links[i].batch);
        free(fast->links[i].frame);
        free(fast->links[i].gro);
    }
    free(fast->links);
    free(fast->out);
    relay_free_all(fast);
    free(fast->host);
    free(fast);
}

static struct link *link_at(struct dfast *fast, int link)
{
    if (fast == NULL || link < 0 || link >= fast->link_count)
        return NULL;
    return &fast->links[link];
}

static struct batch *new_batch(void)
{
    struct batch *batch = calloc(1, sizeof *batch);
    if (batch == NULL)
        return NULL;
    batch->in = malloc((size_t)DFAST_BATCH * DFAST_MAX_PACKET);
    batch->out = malloc((size_t)DFAST_BATCH * DFAST_BUFFER);
    if (batch->in == NULL || batch->out == NULL) {
        free_batch(batch);
        return NULL;
    }
    for (int i = 0; i < DFAST_BATCH; i++) {
        batch->in_vectors[i].iov_base = batch->in + (size_t)i * DFAST_MAX_PACKET;
        batch->in_vectors[i].iov_len = DFAST_MAX_PACKET;
        batch->in_messages[i].msg_hdr.msg_iov = &batch->in_vectors[i];
        batch->in_messages[i].msg_hdr.msg_iovlen = 1;
        batch->out_vectors[i].iov_base = batch->out + (size_t)i * DFAST_BUFFER;
    }
    return batch;
}

int dfast_set_link(struct dfast *fast, int link, int fd, int ingress, int datagram_socket)
{
    struct link *l = link_at(fast, link);
    if (l == NULL || fd < 0 || (ingress != DFAST_UPPER && ingress != DFAST_NETWORK))
        return -EINVAL;
    if (datagram_socket && l->batch == NULL) {
        l->batch = new_batch();
        if (l->batch == NULL)
            return -ENOMEM;
    }
    l->fd = fd;
    l->ingress = ingress;
    l->gso = datagram_socket && udp_runs_possible(fd);
    return 0;
}

/* big-endian (network byte order) fields */
static uint16_t get16(const uint8_t *at)
{
    return (uint16_t)((at[0] << 8) | at[1]);
}

static void put16(uint8_t *at, size_t value)
{
    at[0] = (uint8_t)(value >> 8);
    at[1] = (uint8_t)value;
}

/* -- TCP segmentation and checksum offload (mip6/runtime/offload.py) ----------------------- */

/* linux/virtio_net.h: struct virtio_net_hdr, in native byte order on a TUN device */
#define VNET_HEADER 10
#define VNET_NEEDS_CSUM 0x01
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV6 4
#define VNET_GSO_ECN 0x80
#define DFAST_FRAME (VNET_HEADER + DFAST_MAX_PACKET)
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static const uint8_t plain_header[VNET_HEADER]; /* no offload asked of the kernel */

int dfast_set_offload(struct dfast *fast, int link)
{
    struct link *l = link_at(fast, link);
    if (l == NULL || l->fd < 0 || l->batch != NULL)
        return -EINVAL;
    if (l->frame == NULL)
        l->frame = malloc(DFAST_FRAME);
    if (l->gro == NULL)
        l->gro = malloc(DFAST_FRAME);
    if (l->frame == NULL || l->gro == NULL)
        return -ENOMEM;
    l->frame_size = l->gro_size = 0;
    return 0;
}

static uint16_t get_native16(const uint8_t *at)
{
    uint16_t value;
    memcpy(&value, at, 2);
    return value;
}

/* The RFC 1071 sum of `size` bytes as big-endian 16-bit words, folded to 16 bits: native words
 * summed eight bytes at a time, which is the same sum byte-swapped on a little-endian machine
 * (RFC 1071 2(B)), read back through memory as big-endian. */
static uint32_t sum_be(const uint8_t *data, size_t size)
{
    uint64_t sum = 0;
    for (; size >= 8; data += 8, size -= 8) {
        uint64_t word;
        memcpy(&word, data, 8);
        sum += (word & 0xFFFFFFFFu) + (word >> 32);
    }
    for (; size >= 2; data += 2, size -= 2)
        sum += get_native16(data);
    if (size == 1) {
        const uint8_t padded[2] = {data[0], 0};
        sum += get_native16(padded);
    }
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    uint16_t native = (uint16_t)sum;
    uint8_t bytes[2];
    memcpy(bytes, &native, 2);
    return get16(bytes);
}

static uint16_t fold_complement(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

int dfast_frame_packet(const uint8_t *frame, size_t size, uint32_t index, uint8_t *out,
                       size_t capacity)
{
    if (frame == NULL || out == NULL || capacity < DFAST_MAX_PACKET || size < VNET_HEADER ||
        size - VNET_HEADER > DFAST_MAX_PACKET)
        return -EINVAL;
    uint8_t flags = frame[0], gso_type = frame[1];
    size_t gso_size = get_native16(frame + 4), csum_start = get_native16(frame + 6),
           csum_offset = get_native16(frame + 8);
    const uint8_t *packet = frame + VNET_HEADER;
    size_t length = size - VNET_HEADER;
    if ((gso_type & ~VNET_GSO_ECN) == VNET_GSO_NONE) {
        if (index > 0)
            return 0;
        memcpy(out, packet, length);
        if (flags & VNET_NEEDS_CSUM) {
            /* Linux's skb_checksum_help: the sum from csum_start, the pseudo-header's sum
             * already in the field, complemented into it */
            size_t field = csum_start + csum_offset;
            if (csum_start < IPV6_HEADER || field + 2 > length)
                return -EINVAL;
            uint16_t value = fold_complement(sum_be(out + csum_start, length - csum_start));
            if (value == 0 && csum_offset == 6)
                value = 0xFFFF; /* RFC 8200 8.1: UDP's (at offset 6) zero is sent as 0xFFFF */
            put16(out + field, value);
        }
        return (int)length;
    }
    /* a TCP segment to cut: RFC 9293 3.1, as Linux's tcp_gso_segment */
    if ((gso_type & ~VNET_GSO_ECN) != VNET_GSO_TCPV6 || !(flags & VNET_NEEDS_CSUM) ||
        gso_size == 0 || length < IPV6_HEADER + 20 || packet[NEXT_HEADER] != PROTO_TCP)
        return -EINVAL;
    size_t tcp_length = 4u * (packet[IPV6_HEADER + 12] >> 4);
    size_t headers = IPV6_HEADER + tcp_length;
    if (tcp_length < 20 || headers > length)
        return -EINVAL;
    size_t payload = length - headers, start = (size_t)index * gso_size;
    if (start >= payload && !(index == 0 && payload == 0))
        return 0;
    size_t piece = payload - start < gso_size ? payload - start : gso_size;
    memcpy(out, packet, headers);
    memcpy(out + headers, packet + headers + start, piece);
    put16(out + PAYLOAD_LENGTH, tcp_length + piece);
    uint8_t *tcp = out + IPV6_HEADER;
    uint32_t sequence = ((uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 |
                         (uint32_t)tcp[6] << 8 | tcp[7]) + (uint32_t)start;
    tcp[4] = (uint8_t)(sequence >> 24);
    tcp[5] = (uint8_t)(sequence >> 16);
    tcp[6] = (uint8_t)(sequence >> 8);
    tcp[7] = (uint8_t)sequence;
    if (start + gso_size < payload) /* not the last piece: FIN and PSH are the last one's */
        tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (start > 0) /* CWR is the first piece's */
        tcp[13] &= (uint8_t)~TCP_CWR;
    tcp[16] = tcp[17] = 0;
    /* RFC 8200 8.1: the pseudo-header, then the segment */
    uint64_t sum = (uint64_t)(tcp_length + piece) + PROTO_TCP;
    for (int i = 0; i < 2 * ADDRESS; i += 2)
        sum += get16(out + SOURCE + i);
    sum += sum_be(tcp, tcp_length + piece);
    put16(tcp + 16, fold_complement(sum));
    return (int)(headers + piece);
}

/* -- the decision table: open addressing, linear probing, at most half full ------------------ */

static size_t slot_of(const uint8_t *key)
{
    uint64_t word, hash = key[0];
    for (int i = 1; i < KEY_BYTES; i += 8) {
        memcpy(&word, key + i, 8);
        hash = (hash ^ word) * 0x9E3779B97F4A7C15ull;
    }
    return (size_t)(hash ^ (hash >> 32)) & (DFAST_SLOTS - 1);
}

static struct decision *lookup(struct dfast *fast, const uint8_t *key)
{
    for (size_t i = slot_of(key);; i = (i + 1) & (DFAST_SLOTS - 1)) {
        int32_t id = fast->slots[i];
        if (id == 0)
            return NULL;
        struct decision *d = &fast->decisions[id - 1];
        if (memcmp(d->key, key, KEY_BYTES) == 0)
            return d;
    }
}

static void make_key(uint8_t *key, int ingress, const uint8_t *addresses)
{
    key[0] = (uint8_t)ingress;
    memcpy(key + 1, addresses, 2 * ADDRESS);
}

int dfast_decide(struct dfast *fast, int ingress, const uint8_t *key, int action,
                 const uint8_t *address, const uint8_t *source, int hop_limit, int out,
                 int verify, double expires)
{
    if (fast == NULL || key == NULL || address == NULL || source == NULL ||
        link_at(fast, out) == NULL || ingress < DFAST_UPPER || ingress > DFAST_TUNNEL ||
        action < DFAST_FORWARD || action > DFAST_DECAPSULATE || hop_limit < 0 ||
        hop_limit > 255 || isnan(expires))
        return -EINVAL;
    uint8_t full[KEY_BYTES];
    make_key(full, ingress, key);
    struct decision *d = lookup(fast, full);
    if (d == NULL) {
        if (fast->count >= DFAST_MAX_DECISIONS)
            return -ENOSPC;
        size_t i = slot_of(full);
        while (fast->slots[i] != 0)
            i = (i + 1) & (DFAST_SLOTS - 1);
        d = &fast->decisions[fast->count];
        fast->slots[i] = ++fast->count;
        memcpy(d->key, full, KEY_BYTES);
    }
    d->action = (uint8_t)action;
    d->verify = verify != 0;
    d->out = out;
    memcpy(d->address, address, ADDRESS);
    memcpy(d->source, source, ADDRESS);
    d->hop_limit = (uint8_t)hop_limit;
    d->expires = expires;
    memset(&d->usage, 0, sizeof d->usage);
    return (int)(d - fast->decisions);
}

void dfast_forget(struct dfast *fast)
{
    if (fast == NULL)
        return;
    memset(fast->slots, 0, sizeof fast->slots);
    fast->count = 0;
}

int dfast_decisions(const struct dfast *fast)
{
    return fast == NULL ? 0 : fast->count;
}

const struct dfast_usage *dfast_usage(const struct dfast *fast, int id)
{
    if (fast == NULL || id < 0 || id >= fast->count)
        return NULL;
    return &fast->decisions[id].usage;
}

/* -- what the engine's parser accepts (mip6.wire) ------------------------------------------- */

/* mip6.wire.checksum.verify_upper_layer: the RFC 1071 sum over the RFC 8200 8.1 pseudo-header
 * and the segment (checksum field included) is -0. */
static int checksum_verifies(const uint8_t *source, const uint8_t *destination, int next_header,
                             const uint8_t *segment, size_t size)
{
    uint64_t sum = (uint64_t)size + (uint64_t)next_header;
    for (int i = 0; i < ADDRESS; i += 2)
        sum += get16(source + i) + get16(destination + i);
    size_t i = 0;
    for (; i + 1 < size; i += 2)
        sum += get16(segment + i);
    if (i < size)
        sum += (uint64_t)segment[i] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return sum == 0xFFFF;
}

/* mip6.wire.tcp.parse_tcp_options: the strict option rules (RFC 9293 3.1, 3.2). */
static int tcp_options_parse(const uint8_t *segment, size_t end)
{
    size_t offset = 20;
    while (offset < end) {
        uint8_t kind = segment[offset];
        if (kind == 0) { /* End of Option List: the padding after it must be zero */
            for (size_t i = offset + 1; i < end; i++)
                if (segment[i] != 0)
                    return 0;
            return 1;
        }
        if (kind == 1) { /* No-Operation */
            offset++;
            continue;
        }
        if (offset + 2 > end)
            return 0;
        size_t length = segment[offset + 1];
        if (length < 2 || offset + length > end)
            return 0;
        /* _FIXED_LENGTHS: MSS 4, Window Scale 3, SACK Permitted 2, Timestamps 10 */
        if ((kind == 2 && length != 4) || (kind == 3 && length != 3) ||
            (kind == 4 && length != 2) || (kind == 8 && length != 10))
            return 0;
        if (kind == 5 && ((length - 2) % 8 != 0 || length < 10 || length > 34))
            return 0; /* SACK: 2 + 8n bytes, n from 1 to 4 */
        offset += length;
    }
    return 1;
}

/* Whether `segment` of type `next_header` is one the fast path carries: TCP, UDP or ICMPv6,
 * and with `verify` one the engine's parser accepts as TCP, UDP or an ICMPv6 Echo over the
 * pseudo-header of `source` and `destination` (mip6.wire.tcp, udp, icmpv6 parse). */
static int upper_ok(int next_header, const uint8_t *segment, size_t size, int verify,
                    const uint8_t *source, const uint8_t *destination)
{
    if (next_header != PROTO_TCP && next_header != PROTO_UDP && next_header != PROTO_ICMPV6)
        return 0;
    if (!verify)
        return 1; /* the engine's send path walks the headers and reads no further */
    if (next_header == PROTO_TCP) {
        if (size < 20)
            return 0;
        size_t header_length = 4u * (segment[12] >> 4);
        if (header_length < 20 || header_length > size || !tcp_options_parse(segment, header_length))
            return 0;
    } else if (next_header == PROTO_UDP) {
        /* RFC 768 Length equals the datagram; RFC 8200 8.1: a zero checksum is discarded */
        if (size < 8 || get16(segment + 4) != size || get16(segment + 6) == 0)
            return 0;
    } else if (size < 8 ||
               (segment[0] != ICMPV6_ECHO_REQUEST && segment[0] != ICMPV6_ECHO_REPLY)) {
        return 0; /* other ICMPv6 messages may mean something to the engine */
    }
    return checksum_verifies(source, destination, next_header, segment, size);
}

/* -- decisions applied (mip6.core.datapath) ------------------------------------------------- */

static struct decision *decision_for(struct dfast *fast, int ingress, const uint8_t *packet,
                                     size_t size, double now);
static int carry(struct dfast *fast, struct decision *d, const uint8_t *packet, size_t size,
                 uint8_t *out, double now, int *link);

static int apply(struct dfast *fast, const struct decision *d, const uint8_t *packet, size_t size,
                 uint8_t *out, double now, int *link)
{
    size_t payload = size - IPV6_HEADER;
    switch (d->action) {
    case DFAST_FORWARD:
        if (!upper_ok(packet[NEXT_HEADER], packet + IPV6_HEADER, payload, d->verify,
                      packet + SOURCE, packet + DESTINATION))
            return DFAST_PUNT;
        memcpy(out, packet, size);
        return (int)size;
    case DFAST_INSERT_TYPE2_ROUTING:
        /* insert_type2_routing: RFC 3775 6.4, 9.3.2 */
        if (payload + MIPV6_HEADER > 0xFFFF ||
            !upper_ok(packet[NEXT_HEADER], packet + IPV6_HEADER, payload, d->verify,
                      packet + SOURCE, packet + DESTINATION))
            return DFAST_PUNT;
        memcpy(out, packet, IPV6_HEADER);
        put16(out + PAYLOAD_LENGTH, payload + MIPV6_HEADER);
        out[NEXT_HEADER] = PROTO_ROUTING;
        memcpy(out + DESTINATION, d->address, ADDRESS);
        uint8_t *routing = out + IPV6_HEADER;
        routing[0] = packet[NEXT_HEADER];
        routing[1] = 2; /* Hdr Ext Len */
        routing[2] = 2; /* Routing Type */
        routing[3] = 1; /* Segments Left */
        memset(routing + 4, 0, 4);
        memcpy(routing + 8, packet + DESTINATION, ADDRESS);
        memcpy(out + IPV6_HEADER + MIPV6_HEADER, packet + IPV6_HEADER, payload);
        return (int)(size + MIPV6_HEADER);
    case DFAST_REMOVE_HOME_ADDRESS_OPTION: {
        /* Inbound.delivered for a Destination Options header that holds only the Home
         * Address option of the binding (RFC 3775 9.3.1); no other header */
        const uint8_t *options = packet + IPV6_HEADER;
        if (packet[NEXT_HEADER] != PROTO_DESTINATION_OPTIONS) {
            /* a packet from the care-of address without the option: delivered as it came */
            struct decision plain = *d;
            plain.action = DFAST_FORWARD;
            return apply(fast, &plain, packet, size, out, now, link);
        }
        if (payload < MIPV6_HEADER ||
            options[1] != 2 || memcmp(options + 2, HAO_PREFIX, sizeof HAO_PREFIX) != 0 ||
            memcmp(options + 8, d->address, ADDRESS) != 0 ||
            !upper_ok(options[0], options + MIPV6_HEADER, payload - MIPV6_HEADER, d->verify,
                      d->address, packet + DESTINATION))
            return DFAST_PUNT;
        memcpy(out, packet, IPV6_HEADER);
        put16(out + PAYLOAD_LENGTH, payload - MIPV6_HEADER);
        out[NEXT_HEADER] = options[0];
        memcpy(out + SOURCE, d->address, ADDRESS);
        memcpy(out + IPV6_HEADER, options + MIPV6_HEADER, payload - MIPV6_HEADER);
        return (int)(size - MIPV6_HEADER);
    }
    case DFAST_INSERT_HOME_ADDRESS_OPTION: {
        /* insert_home_address_option: RFC 3775 6.3, 11.3.1 */
        if (payload + MIPV6_HEADER > 0xFFFF ||
            !upper_ok(packet[NEXT_HEADER], packet + IPV6_HEADER, payload, d->verify,
                      packet + SOURCE, packet + DESTINATION))
            return DFAST_PUNT;
        memcpy(out, packet, IPV6_HEADER);
        put16(out + PAYLOAD_LENGTH, payload + MIPV6_HEADER);
        out[NEXT_HEADER] = PROTO_DESTINATION_OPTIONS;
        memcpy(out + SOURCE, d->address, ADDRESS);
        uint8_t *options = out + IPV6_HEADER;
        options[0] = packet[NEXT_HEADER];
        options[1] = 2; /* Hdr Ext Len */
        memcpy(options + 2, HAO_PREFIX, sizeof HAO_PREFIX);
        memcpy(options + 8, packet + SOURCE, ADDRESS);
        memcpy(out + IPV6_HEADER + MIPV6_HEADER, packet + IPV6_HEADER, payload);
        return (int)(size + MIPV6_HEADER);
    }
    case DFAST_REMOVE_TYPE2_ROUTING: {
        /* NodePipeline.data_fast_path: one type 2 routing header with one segment left
         * naming the home address (RFC 3775 6.4, 11.3.3; mip6.wire.walk.type2_routed) */
        const uint8_t *routing = packet + IPV6_HEADER;
        if (packet[NEXT_HEADER] != PROTO_ROUTING) {
            struct decision plain = *d;
            plain.action = DFAST_FORWARD;
            return apply(fast, &plain, packet, size, out, now, link);
        }
        if (payload < MIPV6_HEADER || routing[1] != 2 || routing[2] != 2 || routing[3] != 1 ||
            memcmp(routing + 8, d->address, ADDRESS) != 0 ||
            !upper_ok(routing[0], routing + MIPV6_HEADER, payload - MIPV6_HEADER, d->verify,
                      packet + SOURCE, d->address))
            return DFAST_PUNT;
        memcpy(out, packet, IPV6_HEADER);
        put16(out + PAYLOAD_LENGTH, payload - MIPV6_HEADER);
        out[NEXT_HEADER] = routing[0];
        memcpy(out + DESTINATION, d->address, ADDRESS);
        memcpy(out + IPV6_HEADER, routing + MIPV6_HEADER, payload - MIPV6_HEADER);
        return (int)(size - MIPV6_HEADER);
    }
    case DFAST_ENCAPSULATE:
    case DFAST_ENCAPSULATE_FORWARDED: {
        /* encapsulate: RFC 2473 3, an outer header with Next Header 41, traffic class and
         * flow label 0; forwarded, the inner Hop Limit goes down by one (3.1), and a packet
         * that would leave with 0 is the engine's (an ICMPv6 Time Exceeded) */
        int forwarded = d->action == DFAST_ENCAPSULATE_FORWARDED;
        if (size > 0xFFFF || (forwarded && packet[HOP_LIMIT] <= 1) ||
            !upper_ok(packet[NEXT_HEADER], packet + IPV6_HEADER, payload, d->verify,
                      packet + SOURCE, packet + DESTINATION))
            return DFAST_PUNT;
        memset(out, 0, IPV6_HEADER);
        out[0] = 6 << 4;
        put16(out + PAYLOAD_LENGTH, size);
        out[NEXT_HEADER] = PROTO_IPV6;
        out[HOP_LIMIT] = d->hop_limit;
        memcpy(out + SOURCE, d->source, ADDRESS);
        memcpy(out + DESTINATION, d->address, ADDRESS);
        memcpy(out + IPV6_HEADER, packet, size);
        if (forwarded)
            out[IPV6_HEADER + HOP_LIMIT]--;
        return (int)(size + IPV6_HEADER);
    }
    case DFAST_DECAPSULATE: {
        /* HomeAgent._reverse_tunnel, MobileNode._tunnelled_fast: an outer header without
         * extension headers around a whole inner packet from the home address (or from
         * anyone: `address` unspecified); then what the engine decided for the inner
         * packet's addresses (never another decapsulation: a tunnel in the tunnel is the
         * engine's to refuse) */
        static const uint8_t unspecified[ADDRESS];
        const uint8_t *inner = packet + IPV6_HEADER;
        if (packet[NEXT_HEADER] != PROTO_IPV6 || payload < IPV6_HEADER || inner[0] >> 4 != 6 ||
            (memcmp(d->address, unspecified, ADDRESS) != 0 &&
             memcmp(inner + SOURCE, d->address, ADDRESS) != 0))
            return DFAST_PUNT;
        struct decision *next = decision_for(fast, DFAST_TUNNEL, inner, payload, now);
        if (next == NULL || next->action == DFAST_DECAPSULATE)
            return DFAST_PUNT;
        return carry(fast, next, inner, payload, out, now, link);
    }
    }
    return DFAST_PUNT;
}

/* The decision for `packet` from `ingress` at `now`, if one is in force (NULL: punt). */
static struct decision *decision_for(struct dfast *fast, int ingress, const uint8_t *packet,
                                     size_t size, double now)
{
    if (size < IPV6_HEADER || size > DFAST_MAX_PACKET || packet[0] >> 4 != 6 ||
        IPV6_HEADER + (size_t)get16(packet + PAYLOAD_LENGTH) != size)
        return NULL;
    uint8_t key[KEY_BYTES];
    make_key(key, ingress, packet + SOURCE);
    struct decision *d = lookup(fast, key);
    if (d == NULL || !(now < d->expires))
        return NULL; /* past its binding's lifetime: the engine expires the binding */
    return d;
}

/* Decision `d` applied to `packet` into `out`: the length written, with its usage counted and
 * *link set, or DFAST_PUNT when the packet is not of the shape the decision takes. */
static int carry(struct dfast *fast, struct decision *d, const uint8_t *packet, size_t size,
                 uint8_t *out, double now, int *link)
{
    int written = apply(fast, d, packet, size, out, now, link);
    if (written < 0)
        return DFAST_PUNT;
    d->usage.packets++;
    d->usage.bytes += (uint64_t)written;
    d->usage.last_used = now;
    if (d->action != DFAST_DECAPSULATE) /* else the inner decision's link, set by apply */
        *link = d->out;
    return written;
}

int dfast_transform(struct dfast *fast, int ingress, const uint8_t *packet, size_t size,
                    uint8_t *out, size_t capacity, double now, int *link)
{
    if (fast == NULL || packet == NULL || out == NULL || link == NULL || capacity < DFAST_BUFFER)
        return DFAST_PUNT;
    struct decision *d = decision_for(fast, ingress, packet, size, now);
    return d == NULL ? DFAST_PUNT : carry(fast, d, packet, size, out, now, link);
}

/* -- coalescing what goes to an offloading TUN device ----------------------------------------- */

#define TCP_ACK 0x10

static void write_frame(struct link *l, const uint8_t *header, const uint8_t *packet, size_t size)
{
    struct iovec parts[2] = {{(void *)header, VNET_HEADER}, {(void *)packet, size}};
    ssize_t sent;
    do
        sent = writev(l->fd, parts, 2);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        l->counters.send_errors++; /* dropped, as a link drops: Link.send does too */
        return;
    }
    l->counters.out_packets++;
    l->counters.out_bytes += (uint64_t)size;
}

/* The TCP header length of a TCP/IPv6 packet without extension headers carrying data, as a
 * segment a frame may hold (ACK, maybe PSH, no other flag); 0 for any other packet. */
static size_t coalescible(const uint8_t *packet, size_t size)
{
    if (size < IPV6_HEADER + 20 || packet[NEXT_HEADER] != PROTO_TCP)
        return 0;
    size_t tcp_length = 4u * (packet[IPV6_HEADER + 12] >> 4);
    if (tcp_length < 20 || IPV6_HEADER + tcp_length >= size ||
        (packet[IPV6_HEADER + 13] & ~TCP_PSH) != TCP_ACK)
        return 0;
    return tcp_length;
}

static uint32_t get32(const uint8_t *at)
{
    return (uint32_t)at[0] << 24 | (uint32_t)at[1] << 16 | (uint32_t)at[2] << 8 | at[3];
}

/* Write what link `l` holds: one packet as it is, several as one TCP segment for the kernel
 * (gso_type TCPV6, gso_size their payload; the checksum left to it, the field holding the
 * pseudo-header's sum, as Linux's own TCP leaves it: CHECKSUM_PARTIAL). */
static void gro_flush(struct link *l)
{
    if (l->gro_size == 0)
        return;
    uint8_t *header = l->gro, *packet = l->gro + VNET_HEADER;
    size_t size = l->gro_size;
    l->gro_size = 0;
    if (l->gro_segments == 1) {
        write_frame(l, plain_header, packet, size);
        return;
    }
    size_t tcp_length = 4u * (packet[IPV6_HEADER + 12] >> 4);
    uint16_t fields[4] = {(uint16_t)(IPV6_HEADER + tcp_length), (uint16_t)l->gro_mss,
                          IPV6_HEADER, 16};
    header[0] = VNET_NEEDS_CSUM;
    header[1] = VNET_GSO_TCPV6;
    memcpy(header + 2, fields, sizeof fields); /* native byte order, as the kernel reads it */
    uint64_t sum = (uint64_t)(size - IPV6_HEADER) + PROTO_TCP;
    for (int i = 0; i < 2 * ADDRESS; i += 2)
        sum += get16(packet + SOURCE + i);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    put16(packet + IPV6_HEADER + 16, (size_t)sum);
    l->counters.coalesced += l->gro_segments;
    write_frame(l, header, packet, size);
}

/* `packet` out of offloading TUN device `l`: added to the segment it holds where it continues
 * it (the same connection and headers but for the sequence number, the next bytes, no more
 * than the first one's payload), else after what it holds is written. */
static void gro_write(struct link *l, const uint8_t *packet, size_t size)
{
    uint8_t *held = l->gro + VNET_HEADER;
    size_t tcp_length = coalescible(packet, size);
    size_t headers = IPV6_HEADER + tcp_length, payload = size - headers;
    if (l->gro_size > 0 && tcp_length > 0 &&
        tcp_length == 4u * (held[IPV6_HEADER + 12] >> 4) && payload <= l->gro_mss &&
        l->gro_size + payload <= DFAST_MAX_PACKET &&
        memcmp(packet, held, PAYLOAD_LENGTH) == 0 && /* version, class, flow label */
        memcmp(packet + NEXT_HEADER, held + NEXT_HEADER, IPV6_HEADER - NEXT_HEADER) == 0 &&
        memcmp(packet + IPV6_HEADER, held + IPV6_HEADER, 4) == 0 && /* ports */
        get32(packet + IPV6_HEADER + 4) == l->gro_next &&
        memcmp(packet + IPV6_HEADER + 8, held + IPV6_HEADER + 8, 5) == 0 && /* ack, offset */
        (packet[IPV6_HEADER + 13] & ~TCP_PSH) == held[IPV6_HEADER + 13] &&
        memcmp(packet + IPV6_HEADER + 14, held + IPV6_HEADER + 14, 2) == 0 && /* window */
        memcmp(packet + IPV6_HEADER + 18, held + IPV6_HEADER + 18, tcp_length - 18) == 0) {
        memcpy(held + l->gro_size, packet + headers, payload);
        l->gro_size += payload;
        l->gro_segments++;
        l->gro_next += (uint32_t)payload;
        put16(held + PAYLOAD_LENGTH, l->gro_size - IPV6_HEADER);
        if (packet[IPV6_HEADER + 13] & TCP_PSH || payload < l->gro_mss) {
            held[IPV6_HEADER + 13] |= packet[IPV6_HEADER + 13] & TCP_PSH; /* the last one's */
            gro_flush(l);
        }
        return;
    }
    gro_flush(l);
    if (tcp_length > 0 && !(packet[IPV6_HEADER + 13] & TCP_PSH)) {
        memcpy(held, packet, size);
        l->gro_size = size;
        l->gro_segments = 1;
        l->gro_mss = (uint32_t)payload;
        l->gro_next = get32(packet + IPV6_HEADER + 4) + (uint32_t)payload;
        return;
    }
    write_frame(l, plain_header, packet, size);
}

/* -- I/O -------------------------------------------------------------------------------------- */

static double monotonic_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* The packets queued for datagram socket `l`, from packet `from` on, as its batch's messages
 * (udp_runs.h). */
static int group_runs(struct link *l, int from)
{
    struct batch *batch = l->batch;
    const struct udp_runs runs = {batch->run_messages, batch->run_controls, batch->run_first,
                                  batch->run_count};
    return udp_runs_group(&runs, batch->out_vectors, from, batch->out_count, l->gso, NULL, 0);
}

/* Write the packets queued for a datagram socket, in one sendmmsg where the socket takes
 * them all; what it refuses (a full buffer) is dropped and counted, as Link.send drops. A
 * socket that refuses segmentation offload (EIO, EINVAL: a kernel or route without it) is
 * written packet by packet from then on. */
static void flush(struct link *l)
{
    struct batch *batch = l->batch;
    int runs = group_runs(l, 0);
    int done = 0;
    while (done < runs) {
        int sent = sendmmsg(l->fd, batch->run_messages + done, (unsigned)(runs - done), 0);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { /* full: none of them fits now */
                for (int r = done; r < runs; r++)
                    l->counters.send_errors += (uint64_t)batch->run_count[r];
                break;
            }
            if (l->gso && udp_runs_refused(batch->run_count[done], errno)) {
                l->gso = 0; /* no offload here: the rest again, one message per packet */
                runs = group_runs(l, batch->run_first[done]);
                done = 0;
                continue;
            }
            l->counters.send_errors += (uint64_t)batch->run_count[done];
            done++; /* the first of those left could not go: drop it, try the rest */
            continue;
        }
        for (int r = done; r < done + sent; r++) {
            int n = batch->run_count[r];
            if (n > 1)
                l->counters.segmented += (uint64_t)n;
            for (int i = batch->run_first[r]; i < batch->run_first[r] + n; i++) {
                l->counters.out_packets++;
                l->counters.out_bytes += batch->out_vectors[i].iov_len;
            }
        }
        done += sent;
    }
    batch->out_count = 0;
}

/* Where the next packet queued for datagram socket `l` goes (the queue written out if full). */
static uint8_t *next_slot(struct link *l)
{
    if (l->batch->out_count == DFAST_BATCH)
        flush(l);
    return l->batch->out + (size_t)l->batch->out_count * DFAST_BUFFER;
}

static void flush_all(struct dfast *fast)
{
    for (int i = 0; i < fast->link_count; i++) {
        if (fast->links[i].batch != NULL && fast->links[i].batch->out_count > 0)
            flush(&fast->links[i]);
        gro_flush(&fast->links[i]);
    }
}

/* Packet `out` (`written` bytes) leaves by `target`: queued in its batch (a datagram socket's:
 * `out` is the slot next_slot gave), coalesced for an offloading TUN device, or written. */
static void emit(struct link *target, const uint8_t *out, size_t written)
{
    if (target->batch != NULL) {
        target->batch->out_vectors[target->batch->out_count++].iov_len = written;
        return;
    }
    if (target->gro != NULL) { /* an offloading TUN device: coalesced, or with a header */
        gro_write(target, out, written);
        return;
    }
    ssize_t sent;
    do
        sent = write(target->fd, out, written);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        target->counters.send_errors++; /* dropped, as a link drops: Link.send does too */
        return;
    }
    target->counters.out_packets++;
    target->counters.out_bytes += (uint64_t)written;
}

/* -- the daemon's own TCP host ---------------------------------------------------------------- */

typedef int (*tcp_input_fn)(struct tcp_conn *, uint64_t, const uint8_t *, size_t);
typedef size_t (*tcp_output_fn)(struct tcp_conn *, uint64_t, uint8_t *, size_t);
typedef struct tcp_conn *(*conn_new_fn)(const struct tcp_config *, const uint8_t *, uint16_t,
                                        const uint8_t *, uint16_t, size_t, size_t);
typedef void (*conn_free_fn)(struct tcp_conn *);
typedef int (*open_passive_fn)(struct tcp_conn *, uint64_t, const uint8_t *, size_t, uint32_t,
                               uint32_t);

#define HOST_SLOTS (2 * DFAST_HOST_CONNECTIONS) /* a power of two */
#define HOST_DELETED (-1)                        /* a slot whose entry was removed */

struct host_entry {
    uint8_t key[DFAST_HOST_KEY];
    struct tcp_conn *conn; /* NULL: a free entry */
    int32_t id;
    int32_t mtu;
    int32_t touched; /* its record's index + 1 in the touched list; 0: none since Python looked */
    int carried;     /* 0: the stack's alone (its segments are punted); 1: carried; 2: carried
                        but for segments with data or a FIN (DFAST_CARRY_ACKS) */
    int32_t relay;   /* its relay's index + 1 (relay.c); 0: none */
};

struct host_listener {
    int used;
    uint8_t address[ADDRESS];
    uint16_t port;
    int32_t id, allowance, mtu;
    size_t send_capacity, receive_capacity;
    struct tcp_config config;
};

struct host {
    tcp_input_fn input;
    tcp_output_fn output;
    conn_new_fn conn_new;
    conn_free_fn conn_free;
    open_passive_fn open_passive;
    uint8_t key[BLAKE2S_KEY_MAX]; /* the stack's hash key */
    size_t key_size;
    int opens;       /* dfast_host_opens */
    int32_t next_id; /* an opened connection's id: -1, -2, ... */
    struct host_listener listeners[DFAST_HOST_LISTENERS];
    int count;   /* connections registered */
    int deleted; /* HOST_DELETED slots, cleared by a rehash */
    int32_t slots[HOST_SLOTS]; /* entry index + 1; 0: empty */
    struct host_entry entries[DFAST_HOST_CONNECTIONS];
    int32_t free_entries[DFAST_HOST_CONNECTIONS];
    int free_count;
    struct dfast_touched touched[DFAST_HOST_TOUCHED];
    int32_t touched_entry[DFAST_HOST_TOUCHED]; /* the entry each record is about */
    int touched_count;
    struct dfast_host_counters counters;
    uint8_t packet[DFAST_MAX_PACKET]; /* an answer: our IPv6 header and the segment */
    uint8_t out[DFAST_BUFFER];        /* what its decision makes of it, for a link without batch */
};

int dfast_set_host(struct dfast *fast, int link, uintptr_t input, uintptr_t output,
                   uintptr_t conn_new, uintptr_t conn_free, uintptr_t open_passive,
                   const uint8_t *key, size_t key_size)
{
    struct link *l = link_at(fast, link);
    if (l == NULL || l->fd >= 0 || input == 0 || output == 0 || conn_new == 0 ||
        conn_free == 0 || open_passive == 0 || key == NULL || key_size > BLAKE2S_KEY_MAX ||
        fast->host != NULL)
        return -EINVAL;
    struct host *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->input = (tcp_input_fn)input;
    h->output = (tcp_output_fn)output;
    h->conn_new = (conn_new_fn)conn_new;
    h->conn_free = (conn_free_fn)conn_free;
    h->open_passive = (open_passive_fn)open_passive;
    memcpy(h->key, key, key_size);
    h->key_size = key_size;
    h->next_id = -1;
    for (int i = 0; i < DFAST_HOST_CONNECTIONS; i++)
        h->free_entries[i] = DFAST_HOST_CONNECTIONS - 1 - i;
    h->free_count = DFAST_HOST_CONNECTIONS;
    l->host = 1;
    fast->host = h;
    return 0;
}

static size_t host_slot_of(const uint8_t *key)
{
    uint64_t word, hash = 0;
    for (int i = 0; i + 8 <= DFAST_HOST_KEY; i += 8) {
        memcpy(&word, key + i, 8);
        hash = (hash ^ word) * 0x9E3779B97F4A7C15ull;
    }
    uint32_t tail;
    memcpy(&tail, key + DFAST_HOST_KEY - 4, 4);
    hash = (hash ^ tail) * 0x9E3779B97F4A7C15ull;
    return (size_t)(hash ^ (hash >> 32)) & (HOST_SLOTS - 1);
}

/* `key`'s entry, its slot in *slot; NULL when none. */
static struct host_entry *host_lookup(struct host *h, const uint8_t *key, size_t *slot)
{
    for (size_t i = host_slot_of(key);; i = (i + 1) & (HOST_SLOTS - 1)) {
        int32_t v = h->slots[i];
        if (v == 0)
            return NULL;
        if (v > 0 && memcmp(h->entries[v - 1].key, key, DFAST_HOST_KEY) == 0) {
            *slot = i;
            return &h->entries[v - 1];
        }
    }
}

static void host_place(struct host *h, int32_t index)
{
    size_t i = host_slot_of(h->entries[index].key);
    while (h->slots[i] > 0)
        i = (i + 1) & (HOST_SLOTS - 1);
    if (h->slots[i] == HOST_DELETED)
        h->deleted--;
    h->slots[i] = index + 1;
}

/* `key`'s new entry (not registered yet), or NULL when the table is full. */
static struct host_entry *host_new_entry(struct host *h, const uint8_t *key)
{
    if (h->free_count == 0)
        return NULL;
    /* at most three quarters of the slots used or deleted, so a probe always ends */
    if (h->count + h->deleted + 1 > HOST_SLOTS / 4 * 3) {
        memset(h->slots, 0, sizeof h->slots);
        h->deleted = 0;
        for (int32_t i = 0; i < DFAST_HOST_CONNECTIONS; i++)
            if (h->entries[i].conn != NULL)
                host_place(h, i);
    }
    int32_t index = h->free_entries[--h->free_count];
    struct host_entry *e = &h->entries[index];
    memcpy(e->key, key, DFAST_HOST_KEY);
    e->touched = 0;
    e->relay = 0;
    host_place(h, index);
    h->count++;
    return e;
}

int dfast_host_add(struct dfast *fast, const uint8_t *key, uintptr_t conn, int32_t id, int mtu,
                   int carried)
{
    if (fast == NULL || fast->host == NULL || key == NULL || conn == 0 || carried < 0 ||
        carried > DFAST_CARRY_ACKS)
        return -EINVAL;
    struct host *h = fast->host;
    size_t slot;
    struct host_entry *e = host_lookup(h, key, &slot);
    if (e == NULL && (e = host_new_entry(h, key)) == NULL)
        return -ENOSPC;
    int was_carried = e->conn != NULL && e->carried;
    e->conn = (struct tcp_conn *)conn;
    e->id = id;
    e->mtu = mtu;
    e->carried = carried;
    if (e->relay && carried && !was_carried)
        relay_carried(fast, e->relay - 1, monotonic_now());
    return 0;
}

int dfast_host_remove(struct dfast *fast, const uint8_t *key)
{
    if (fast == NULL || fast->host == NULL || key == NULL)
        return -EINVAL;
    struct host *h = fast->host;
    size_t slot;
    struct host_entry *e = host_lookup(h, key, &slot);
    if (e == NULL)
        return -ENOENT;
    h->slots[slot] = HOST_DELETED;
    h->deleted++;
    if (e->relay) {
        int32_t relay = e->relay - 1;
        e->relay = 0;
        relay_gone(fast, relay);
    }
    e->conn = NULL;
    e->touched = 0; /* a record already taken stays: Python knows the id is gone */
    h->free_entries[h->free_count++] = (int32_t)(e - h->entries);
    h->count--;
    return 0;
}

static struct host_listener *host_listener_at(struct host *h, const uint8_t *address, int port)
{
    for (int i = 0; i < DFAST_HOST_LISTENERS; i++) {
        struct host_listener *l = &h->listeners[i];
        if (l->used && l->port == port && memcmp(l->address, address, ADDRESS) == 0)
            return l;
    }
    return NULL;
}

int dfast_host_listen(struct dfast *fast, const uint8_t *address, int port, uintptr_t config,
                      size_t send_capacity, size_t receive_capacity, int32_t id,
                      int32_t allowance, int mtu)
{
    if (fast == NULL || fast->host == NULL || address == NULL || port <= 0 || port > 0xFFFF ||
        config == 0 || send_capacity == 0 || receive_capacity == 0 || mtu <= 0)
        return -EINVAL;
    struct host *h = fast->host;
    struct host_listener *l = host_listener_at(h, address, port);
    for (int i = 0; l == NULL && i < DFAST_HOST_LISTENERS; i++)
        if (!h->listeners[i].used)
            l = &h->listeners[i];
    if (l == NULL)
        return -ENOSPC;
    l->used = 1;
    memcpy(l->address, address, ADDRESS);
    l->port = (uint16_t)port;
    l->config = *(const struct tcp_config *)config;
    l->send_capacity = send_capacity;
    l->receive_capacity = receive_capacity;
    l->id = id;
    l->allowance = allowance;
    l->mtu = mtu;
    return 0;
}

int dfast_host_unlisten(struct dfast *fast, const uint8_t *address, int port)
{
    if (fast == NULL || fast->host == NULL || address == NULL)
        return -EINVAL;
    struct host_listener *l = host_listener_at(fast->host, address, port);
    if (l == NULL)
        return -ENOENT;
    l->used = 0;
    return 0;
}

void dfast_host_opens(struct dfast *fast, int allowed)
{
    if (fast != NULL && fast->host != NULL)
        fast->host->opens = allowed != 0;
}

int dfast_host_connections(const struct dfast *fast)
{
    return fast == NULL || fast->host == NULL ? 0 : fast->host->count;
}

int dfast_host_touched(struct dfast *fast, struct dfast_touched *out, int max)
{
    if (fast == NULL || fast->host == NULL || out == NULL || max <= 0)
        return 0;
    struct host *h = fast->host;
    int n = h->touched_count < max ? h->touched_count : max;
    memcpy(out, h->touched, (size_t)n * sizeof *out);
    /* an entry removed since may hold another connection now: only its own record counts */
    for (int i = 0; i < h->touched_count; i++) {
        struct host_entry *e = &h->entries[h->touched_entry[i]];
        if (e->touched == i + 1)
            e->touched = i < n ? 0 : i + 1 - n;
    }
    h->touched_count -= n;
    memmove(h->touched, h->touched + n, (size_t)h->touched_count * sizeof *h->touched);
    memmove(h->touched_entry, h->touched_entry + n,
            (size_t)h->touched_count * sizeof *h->touched_entry);
    if (h->touched_count == 0)
        fast->touched_link = -1;
    return n;
}

const struct dfast_host_counters *dfast_host_counters(const struct dfast *fast)
{
    return fast == NULL || fast->host == NULL ? NULL : &fast->host->counters;
}

/* What decision `d` adds in front of a packet (apply). */
static size_t added_by(const struct decision *d)
{
    switch (d->action) {
    case DFAST_INSERT_TYPE2_ROUTING:
    case DFAST_INSERT_HOME_ADDRESS_OPTION:
        return MIPV6_HEADER;
    case DFAST_ENCAPSULATE:
    case DFAST_ENCAPSULATE_FORWARDED:
        return IPV6_HEADER;
    default:
        return 0;
    }
}

/* Everything connection `e` owes now, out by decision `u` (the host's tcp_output, our IPv6
 * header as tcp_migrate.stack.Stack._packet writes it, then the decision). */
static void host_answer(struct dfast *fast, struct host_entry *e, struct decision *u, double now,
                        uint64_t now_ms, size_t cap)
{
    struct host *h = fast->host;
    struct link *target = &fast->links[u->out];
    uint8_t *packet = h->packet;
    for (;;) {
        size_t n = h->output(e->conn, now_ms, packet + IPV6_HEADER, cap);
        if (n == 0)
            return;
        /* RFC 8200 3: version 6, traffic class 0, flow label 0, Next Header TCP, Hop Limit 64 */
        packet[0] = 6 << 4;
        packet[1] = packet[2] = packet[3] = 0;
        put16(packet + PAYLOAD_LENGTH, n);
        packet[NEXT_HEADER] = PROTO_TCP;
        packet[HOP_LIMIT] = 64;
        memcpy(packet + SOURCE, e->key, ADDRESS);
        memcpy(packet + DESTINATION, e->key + ADDRESS + 2, ADDRESS);
        uint8_t *out = target->batch != NULL ? next_slot(target) : h->out;
        int link;
        int written = carry(fast, u, packet, IPV6_HEADER + n, out, now, &link);
        h->counters.answers++;
        if (written < 0) {
            h->counters.answers_lost++; /* lost as on a link: the connection sends it again */
            continue;
        }
        emit(target, out, (size_t)written);
    }
}

/* The decision connection `e`'s answers leave by at `now` (UPPER, from its local address to
 * its remote one), with in *cap the largest segment that fits its MTU after it; NULL when
 * there is none the host can use. */
static struct decision *host_way(struct dfast *fast, const uint8_t *key, int mtu, double now,
                                 size_t *cap)
{
    uint8_t way[KEY_BYTES];
    way[0] = DFAST_UPPER;
    memcpy(way + 1, key, ADDRESS);
    memcpy(way + 1 + ADDRESS, key + ADDRESS + 2, ADDRESS);
    struct decision *u = lookup(fast, way);
    if (u == NULL || !(now < u->expires) || u->action == DFAST_DECAPSULATE ||
        fast->links[u->out].host ||
        (size_t)mtu < IPV6_HEADER + added_by(u) + TCP_MAX_HEADER_LEN + 1)
        return NULL;
    size_t room = (size_t)mtu - IPV6_HEADER - added_by(u);
    *cap = room < DFAST_MAX_PACKET - IPV6_HEADER ? room : DFAST_MAX_PACKET - IPV6_HEADER;
    return u;
}

int dfast_host_send(struct dfast *fast, const uint8_t *key, uint64_t now_ms)
{
    if (fast == NULL || fast->host == NULL || key == NULL)
        return -EINVAL;
    size_t slot, cap;
    struct host_entry *e = host_lookup(fast->host, key, &slot);
    if (e == NULL)
        return -ENOENT;
    double now = (double)now_ms / 1000;
    if (!e->carried)
        return DFAST_PUNT;
    struct decision *u = host_way(fast, e->key, e->mtu, now, &cap);
    if (u == NULL)
        return DFAST_PUNT;
    host_answer(fast, e, u, now, now_ms, cap);
    flush_all(fast);
    return 0;
}

struct tcp_conn *dfast_host_carried(struct dfast *fast, const uint8_t *key)
{
    size_t slot;
    struct host_entry *e = fast->host == NULL ? NULL : host_lookup(fast->host, key, &slot);
    if (e == NULL || !e->carried || (e->conn->flags & TCP_CF_FROZEN) != 0)
        return NULL;
    return e->conn;
}

int32_t *dfast_host_relay(struct dfast *fast, const uint8_t *key)
{
    size_t slot;
    struct host_entry *e = fast->host == NULL ? NULL : host_lookup(fast->host, key, &slot);
    return e == NULL ? NULL : &e->relay;
}

void dfast_host_output(struct dfast *fast, const uint8_t *key, double now)
{
    struct host *h = fast->host;
    size_t slot, cap;
    struct host_entry *e = h == NULL ? NULL : host_lookup(h, key, &slot);
    if (e == NULL)
        return;
    if (e->touched == 0) {
        if (h->touched_count == DFAST_HOST_TOUCHED)
            return; /* Python looks at every connection then: its timers send it */
        e->touched = ++h->touched_count;
        h->touched[e->touched - 1] = (struct dfast_touched){.id = e->id};
        h->touched_entry[e->touched - 1] = (int32_t)(e - h->entries);
    }
    h->touched[e->touched - 1].flags |= DFAST_TOUCH_INPUT;
    if (!e->carried || (e->conn->flags & TCP_CF_FROZEN) != 0)
        return; /* the stack sends it, as Python hears of the connection */
    struct decision *u = host_way(fast, e->key, e->mtu, now, &cap);
    if (u != NULL)
        host_answer(fast, e, u, now, (uint64_t)(now * 1000 + 0.5), cap);
}

int dfast_host_news(const struct dfast *fast)
{
    return fast->host != NULL && fast->host->touched_count > 0;
}

void dfast_flush_links(struct dfast *fast)
{
    flush_all(fast);
}

struct relays **dfast_relays(struct dfast *fast)
{
    return &fast->relays;
}

double dfast_now(void)
{
    return monotonic_now();
}

static int host_punt(struct host *h)
{
    h->counters.punted++;
    return DFAST_PUNT;
}

/* tcp_migrate.stack.Stack._keyed: BLAKE2s keyed with the stack's key over `label` (3 bytes),
 * the local address, both ports and the remote address, its 4-byte digest big-endian */
static uint32_t host_keyed(const struct host *h, const char *label, const uint8_t *key)
{
    uint8_t message[3 + DFAST_HOST_KEY], digest[4];
    memcpy(message, label, 3);
    memcpy(message + 3, key, ADDRESS);                                 /* local */
    memcpy(message + 3 + ADDRESS, key + ADDRESS, 2);                   /* local port */
    memcpy(message + 3 + ADDRESS + 2, key + 2 * ADDRESS + 2, 2);       /* remote port */
    memcpy(message + 3 + ADDRESS + 4, key + ADDRESS + 2, ADDRESS);     /* remote */
    blake2s(digest, sizeof digest, h->key, h->key_size, message, sizeof message);
    return (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 | (uint32_t)digest[2] << 8 |
           digest[3];
}

/* A SYN (`packet`, for no registered 4-tuple `key`): a connection opened here as
 * tcp_migrate.stack.Stack._no_connection opens one for a listener, its SYN-ACK sent; DFAST_PUNT
 * (nothing done) when the engine must see it: opens not allowed, no listener with room left,
 * a checksum that fails, no way back, no memory, a SYN the core refuses. */
static int host_open(struct dfast *fast, const uint8_t *packet, const uint8_t *key, double now)
{
    struct host *h = fast->host;
    const uint8_t *segment = packet + IPV6_HEADER;
    size_t length = (size_t)get16(packet + PAYLOAD_LENGTH);
    static const uint8_t any[ADDRESS];
    int port = get16(segment + 2);
    if (!h->opens || (segment[13] & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN ||
        h->touched_count == DFAST_HOST_TOUCHED || h->free_count == 0)
        return DFAST_PUNT;
    struct host_listener *l = host_listener_at(h, key, port);
    if (l == NULL)
        l = host_listener_at(h, any, port);
    if (l == NULL || l->allowance <= 0 ||
        !checksum_verifies(packet + SOURCE, packet + DESTINATION, PROTO_TCP, segment, length))
        return DFAST_PUNT;
    size_t cap;
    struct decision *u = host_way(fast, key, l->mtu, now, &cap);
    if (u == NULL)
        return DFAST_PUNT;
    /* RFC 9293 3.7.1, RFC 8201 5.2: the MSS the path takes after the way back's headers (the
     * stack's mss_limit: room less an IPv6 and a TCP header, at least TCP_MIN_MSS) */
    struct tcp_config config = l->config;
    long mss = (long)l->mtu - (long)added_by(u) - IPV6_HEADER - 20;
    if (mss < TCP_MIN_MSS)
        mss = TCP_MIN_MSS;
    if (mss < config.mss)
        config.mss = (uint16_t)mss;
    const uint8_t *remote = key + ADDRESS + 2;
    struct tcp_conn *conn = h->conn_new(&config, key, (uint16_t)port, remote,
                                        get16(key + 2 * ADDRESS + 2), l->send_capacity,
                                        l->receive_capacity);
    if (conn == NULL)
        return DFAST_PUNT;
    uint64_t now_ms = (uint64_t)(now * 1000 + 0.5); /* mip6.runtime.host.stack_ms */
    /* RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a
     * 4-microsecond timer; RFC 7323 7.1's timestamp offset (Stack.iss, Stack.ts_offset) */
    uint32_t iss = (uint32_t)(now_ms * 250) + host_keyed(h, "iss", key);
    uint32_t ts_offset = host_keyed(h, "tso", key);
    if (h->open_passive(conn, now_ms, segment, length, iss, ts_offset) != TCP_IN_OK) {
        h->conn_free(conn);
        return DFAST_PUNT;
    }
    struct host_entry *e = host_new_entry(h, key);
    e->conn = conn;
    e->id = h->next_id;
    h->next_id = h->next_id == INT32_MIN ? -1 : h->next_id - 1;
    e->mtu = l->mtu;
    e->carried = 1;
    e->touched = ++h->touched_count;
    struct dfast_touched *record = &h->touched[e->touched - 1];
    record->id = e->id;
    record->flags = DFAST_TOUCH_OPENED;
    record->conn = (uintptr_t)conn;
    record->listener = l->id;
    h->touched_entry[e->touched - 1] = (int32_t)(e - h->entries);
    l->allowance--;
    h->counters.opened++;
    host_answer(fast, e, u, now, now_ms, cap);
    return 0;
}

/* Packet `packet` (`size` bytes), which a decision delivers to the host: its segment to its
 * connection, the connection's answers out; DFAST_PUNT (untouched) when it is not for a
 * connection registered here, the connection is frozen, no decision takes its answers, or the
 * touched list is full. */
static int host_deliver(struct dfast *fast, const uint8_t *packet, size_t size, double now)
{
    struct host *h = fast->host;
    const uint8_t *segment = packet + IPV6_HEADER;
    size_t length = size - IPV6_HEADER;
    if (h == NULL || packet[NEXT_HEADER] != PROTO_TCP || length < 20)
        goto punt;
    uint8_t key[DFAST_HOST_KEY];
    memcpy(key, packet + DESTINATION, ADDRESS);
    memcpy(key + ADDRESS, segment + 2, 2);
    memcpy(key + ADDRESS + 2, packet + SOURCE, ADDRESS);
    memcpy(key + 2 * ADDRESS + 2, segment, 2);
    size_t slot;
    struct host_entry *e = host_lookup(h, key, &slot);
    if (e == NULL && (segment[13] & TCP_SYN))
        return host_open(fast, packet, key, now) < 0 ? host_punt(h) : 0;
    /* a SYN on a connection's 4-tuple is the engine's (the member's rules for SYNs) */
    if (e == NULL || !e->carried || (segment[13] & TCP_SYN) ||
        (e->conn->flags & TCP_CF_FROZEN) != 0)
        goto punt;
    /* the stack must see data before it is acknowledged (a replica must cover it first) */
    if (e->carried == DFAST_CARRY_ACKS &&
        ((segment[13] & TCP_FIN) || length > (size_t)(segment[12] >> 4) * 4))
        goto punt;
    size_t cap;
    struct decision *u = host_way(fast, e->key, e->mtu, now, &cap);
    if (u == NULL || (e->touched == 0 && h->touched_count == DFAST_HOST_TOUCHED))
        goto punt;
    uint64_t now_ms = (uint64_t)(now * 1000 + 0.5); /* mip6.runtime.host.stack_ms */
    uint32_t received = e->conn->rcv_nxt;
    h->counters.segments++;
    if (h->input(e->conn, now_ms, segment, length) == TCP_IN_BAD_CHECKSUM)
        h->counters.bad_checksum++;
    if (e->touched == 0) {
        e->touched = ++h->touched_count;
        h->touched[e->touched - 1] = (struct dfast_touched){.id = e->id};
        h->touched_entry[e->touched - 1] = (int32_t)(e - h->entries);
    }
    struct dfast_touched *record = &h->touched[e->touched - 1];
    record->flags |= DFAST_TOUCH_INPUT;
    if (e->conn->rcv_nxt != received)
        record->flags |= DFAST_TOUCH_RECEIVED;
    if (e->relay)
        relay_delivered(fast, e->relay - 1); /* before the answer: it may read or send */
    host_answer(fast, e, u, now, now_ms, cap);
    return 0;
punt:
    return h == NULL ? DFAST_PUNT : host_punt(h);
}

/* The next packet read from `in`: its address and length in *size; NULL when there is none
 * now (EAGAIN, or an error counted). A datagram socket is read DFAST_BATCH at a time. */
static const uint8_t *next_packet(struct dfast *fast, struct link *in, size_t *size)
{
    struct batch *batch = in->batch;
    while (in->frame != NULL) {
        if (in->frame_size > 0) { /* the last read's next packet, into the buffer */
            int got = dfast_frame_packet(in->frame, in->frame_size, in->piece, fast->buffer,
                                         DFAST_MAX_PACKET);
            if (got > 0) {
                in->piece++;
                *size = (size_t)got;
                return fast->buffer;
            }
            if (got < 0)
                in->counters.offload_errors++; /* dropped, as a NIC drops what it cannot do */
            in->frame_size = 0;
        }
        ssize_t got = read(in->fd, in->frame, DFAST_FRAME);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                in->counters.receive_errors++;
            return NULL;
        }
        if (got == 0) { /* no header: nothing a TUN device gives */
            in->counters.offload_errors++;
            return NULL;
        }
        in->frame_size = (size_t)got;
        in->piece = 0;
        if (got >= VNET_HEADER && in->frame[1] != VNET_GSO_NONE)
            in->counters.offload_frames++;
    }
    if (batch == NULL) {
        for (;;) {
            ssize_t got = read(in->fd, fast->buffer, DFAST_MAX_PACKET);
            if (got >= 0) {
                *size = (size_t)got;
                return fast->buffer;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                in->counters.receive_errors++;
            return NULL; /* a device that is down: wait for the next readable event */
        }
    }
    if (batch->in_next == batch->in_count) {
        int got;
        do
            got = recvmmsg(in->fd, batch->in_messages, DFAST_BATCH, MSG_DONTWAIT, NULL);
        while (got < 0 && errno == EINTR);
        if (got <= 0) {
            if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED)
                in->counters.receive_errors++; /* ECONNREFUSED: an earlier send found no hub */
            batch->in_next = batch->in_count = 0;
            return NULL;
        }
        batch->in_next = 0;
        batch->in_count = got;
    }
    int i = batch->in_next++;
    *size = batch->in_messages[i].msg_len;
    return batch->in_vectors[i].iov_base;
}

int dfast_drain(struct dfast *fast, int link, int budget, struct dfast_punt *punt)
{
    struct link *in = link_at(fast, link);
    punt->used = 0;
    if (in == NULL || in->fd < 0)
        return DFAST_DONE;
    uint32_t used = 0;
    /* Past the budget, a datagram socket's packets read ahead are still processed: once read,
     * its descriptor may not become readable again to bring us back for them. */
    while (used < (uint32_t)budget || (in->batch != NULL && in->batch->in_next < in->batch->in_count)) {
        size_t size;
        const uint8_t *packet = next_packet(fast, in, &size);
        if (packet == NULL)
            break;
        used++;
        int out_link = -1;
        double now = monotonic_now();
        struct decision *d = decision_for(fast, in->ingress, packet, size, now);
        /* written straight into the batch of the link it will leave by, when that is known
         * before the inner decision of a decapsulation is */
        uint8_t *out = fast->out;
        struct link *target = d == NULL || d->action == DFAST_DECAPSULATE ? NULL
                                                                           : &fast->links[d->out];
        if (target != NULL && target->batch != NULL)
            out = next_slot(target);
        int written = d == NULL ? DFAST_PUNT : carry(fast, d, packet, size, out, now, &out_link);
        if (written >= 0 && target == NULL) {
            target = &fast->links[out_link];
            if (target->batch != NULL)
                memcpy(next_slot(target), out, (size_t)written);
        }
        if (written >= 0 && target->host && host_deliver(fast, out, (size_t)written, now) < 0) {
            d->usage.packets--; /* not carried after all: the engine takes it */
            d->usage.bytes -= (uint64_t)written;
            written = DFAST_PUNT;
        }
        if (written < 0) {
            in->counters.punted++;
            if (packet != fast->buffer)
                memcpy(fast->buffer, packet, size);
            flush_all(fast); /* what C carried leaves before what Python sends next */
            punt->size = (uint32_t)size;
            punt->used = used;
            return DFAST_PUNT;
        }
        if (target->host) {
            fast->touched_link = link;
            target->counters.out_packets++;
            target->counters.out_bytes += (uint64_t)written;
        } else {
            emit(target, out, (size_t)written);
        }
        in->counters.in_packets++;
        in->counters.in_bytes += (uint64_t)size;
    }
    flush_all(fast);
    punt->used = used;
    return DFAST_DONE;
}

static int link_of_fd(const struct dfast *fast, int fd)
{
    for (int i = 0; i < fast->link_count; i++)
        if (fast->links[i].fd == fd)
            return i;
    return -1;
}

#define WAIT_EVENTS 64

int dfast_wait(struct dfast *fast, int epfd, int timeout_ms, int budget, struct dfast_ready *ready,
               int max)
{
    if (fast == NULL || ready == NULL || max <= 0 || budget <= 0)
        return -EINVAL;
    if (fast->pending_link >= 0 || fast->touched_link >= 0) {
        /* not taken yet: the caller's reader has not run */
        int link = fast->pending_link >= 0 ? fast->pending_link : fast->touched_link;
        ready[0].fd = fast->links[link].fd;
        ready[0].events = EPOLLIN;
        return 1;
    }
    struct epoll_event events[WAIT_EVENTS];
    int capacity = max < WAIT_EVENTS ? max : WAIT_EVENTS; /* one entry per event at most */
    double deadline = timeout_ms > 0 ? monotonic_now() + timeout_ms * 1e-3 : 0;
    int wait_ms = timeout_ms;
    for (;;) {
        int got = epoll_wait(epfd, events, capacity, wait_ms);
        if (got < 0)
            return errno == EINTR ? 0 : -errno;
        int count = 0;
        for (int e = 0; e < got; e++) {
            int fd = events[e].data.fd;
            uint32_t flags = events[e].events;
            int news = relay_ready(fast, fd);
            if (news >= 0) { /* the relays' sockets: handled here, Python hears of the outcome */
                if (news) {
                    ready[count].fd = fd;
                    ready[count].events = flags;
                    count++;
                }
                continue;
            }
            int link = link_of_fd(fast, fd);
            /* a link's readiness is ours; anything else about it (EPOLLERR, EPOLLHUP) and every
             * other descriptor are the caller's */
            if (link < 0 || (flags & ~(uint32_t)EPOLLIN) != 0 || fast->pending_link >= 0) {
                ready[count].fd = fd;
                ready[count].events = flags;
                count++;
                continue;
            }
            if (dfast_drain(fast, link, budget, &fast->pending) == DFAST_PUNT) {
                fast->pending_link = link; /* the buffer holds it: read nothing more here */
                ready[count].fd = fd;
                ready[count].events = flags;
                count++;
            } else if (fast->touched_link == link) { /* the host's applications have news */
                ready[count].fd = fd;
                ready[count].events = flags;
                count++;
            }
        }
        if (count > 0 || timeout_ms == 0)
            return count;
        if (timeout_ms > 0) {
            double left = deadline - monotonic_now();
            if (left <= 0)
                return 0;
            wait_ms = (int)ceil(left * 1e3);
        }
    }
}

int dfast_take_punt(struct dfast *fast, int link, struct dfast_punt *punt)
{
    if (fast == NULL || punt == NULL || fast->pending_link < 0 || fast->pending_link != link)
        return DFAST_DONE;
    *punt = fast->pending;
    fast->pending_link = -1;
    return DFAST_PUNT;
}

const struct dfast_counters *dfast_counters(const struct dfast *fast, int link)
{
    if (fast == NULL || link < 0 || link >= fast->link_count)
        return NULL;
    return &fast->links[link].counters;
}
