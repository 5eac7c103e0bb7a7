/* tcp_snapshot.c: see tcp_snapshot.h. */
#include "tcp_snapshot.h"

#include <string.h>

#include "tcp_cc.h"
#include "tcp_seq.h"

static const uint8_t MAGIC[4] = {'T', 'C', 'P', 'M'};

/* Armed-timer bits of the snapshot. */
#define SNAP_T_RTX 0x01
#define SNAP_T_DELACK 0x02
#define SNAP_T_PERSIST 0x04
#define SNAP_T_KEEPALIVE 0x08
#define SNAP_T_TIMEWAIT 0x10
/* Pending-output bits carried over (never TCP_PEND_RST). */
#define SNAP_PENDING (TCP_PEND_ACK | TCP_PEND_SYN | TCP_PEND_RXT | \
                      TCP_PEND_PROBE | TCP_PEND_KA)

/* ---- CRC-32 -------------------------------------------------------------- */

/* crc_table[i]: the CRC register after shifting byte i through the
 * reflected polynomial 0xEDB88320 eight times. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau,
    0x076dc419u, 0x706af48fu, 0xe963a535u, 0x9e6495a3u,
    0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u,
    0x1db71064u, 0x6ab020f2u, 0xf3b97148u, 0x84be41deu,
    0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu,
    0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u,
    0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu,
    0x35b5a8fau, 0x42b2986cu, 0xdbbbc9d6u, 0xacbcf940u,
    0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u,
    0x21b4f4b5u, 0x56b3c423u, 0xcfba9599u, 0xb8bda50fu,
    0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du,
    0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au,
    0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u,
    0x7f6a0dbbu, 0x086d3d2du, 0x91646c97u, 0xe6635c01u,
    0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u,
    0x65b0d9c6u, 0x12b7e950u, 0x8bbeb8eau, 0xfcb9887cu,
    0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u,
    0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu,
    0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u,
    0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u,
    0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u,
    0x59b33d17u, 0x2eb40d81u, 0xb7bd5c3bu, 0xc0ba6cadu,
    0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u,
    0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u,
    0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu,
    0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u,
    0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u,
    0xd6d6a3e8u, 0xa1d1937eu, 0x38d8c2c4u, 0x4fdff252u,
    0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u,
    0xdf60efc3u, 0xa867df55u, 0x316e8eefu, 0x4669be79u,
    0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu,
    0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u,
    0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au,
    0x9c0906a9u, 0xeb0e363fu, 0x72076785u, 0x05005713u,
    0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u,
    0x86d3d2d4u, 0xf1d4e242u, 0x68ddb3f8u, 0x1fda836eu,
    0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu,
    0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u,
    0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu,
    0xaed16a4au, 0xd9d65adcu, 0x40df0b66u, 0x37d83bf0u,
    0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u,
    0xbad03605u, 0xcdd70693u, 0x54de5729u, 0x23d967bfu,
    0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t tcp_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;

    if (data == NULL)
        return crc;
    crc = ~crc;
    for (i = 0; i < len; i++)
        crc = crc_table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- encoding ------------------------------------------------------------ */

/* Writes into out[0 .. cap) or, with out NULL, only counts. */
struct enc {
    uint8_t *out;
    size_t cap;
    size_t len;
};

static uint8_t *room(struct enc *e, size_t n)
{
    uint8_t *p = NULL;

    if (e->out != NULL && n <= e->cap && e->len <= e->cap - n)
        p = e->out + e->len;
    e->len += n;
    return p;
}

static void put_u8(struct enc *e, uint8_t v)
{
    uint8_t *p = room(e, 1);
    if (p)
        p[0] = v;
}

static void put_le16(struct enc *e, uint16_t v)
{
    uint8_t *p = room(e, 2);
    if (p) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
    }
}

static void put_le32(struct enc *e, uint32_t v)
{
    uint8_t *p = room(e, 4);
    if (p) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
    }
}

static void put_bytes(struct enc *e, const uint8_t *src, size_t n)
{
    uint8_t *p = room(e, n);
    if (p && n > 0)
        memcpy(p, src, n);
}

/* Unsigned LEB128, shortest form. */
static void put_varint(struct enc *e, uint64_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 0x7F);
        v >>= 7;
        put_u8(e, v ? (uint8_t)(b | 0x80) : b);
    } while (v);
}

/* A signed 32-bit difference, zigzag-mapped then as a varint. */
static void put_zigzag(struct enc *e, uint32_t d)
{
    put_varint(e, (uint32_t)((d << 1) ^ (0u - (d >> 31))));
}

static uint32_t relative(const struct tcp_conn *c, uint64_t deadline)
{
    uint64_t rel = deadline > c->frozen_at_ms ? deadline - c->frozen_at_ms : 0;
    return rel > UINT32_MAX ? UINT32_MAX : (uint32_t)rel;
}

static uint8_t armed_timers(const struct tcp_conn *c)
{
    return (uint8_t)((c->t_rtx != TCP_NO_DEADLINE ? SNAP_T_RTX : 0) |
                     (c->t_delack != TCP_NO_DEADLINE ? SNAP_T_DELACK : 0) |
                     (c->t_persist != TCP_NO_DEADLINE ? SNAP_T_PERSIST : 0) |
                     (c->t_keepalive != TCP_NO_DEADLINE ? SNAP_T_KEEPALIVE : 0) |
                     (c->t_timewait != TCP_NO_DEADLINE ? SNAP_T_TIMEWAIT : 0));
}

static void encode(const struct tcp_conn *c, int include_unacked, struct enc *e)
{
    uint32_t ring = (uint32_t)ring_length(&c->snd), i;
    uint32_t readable = (uint32_t)ring_length(&c->rcv);
    uint8_t timers = armed_timers(c), *p;
    const uint64_t deadlines[5] = {c->t_rtx, c->t_delack, c->t_persist,
                                   c->t_keepalive, c->t_timewait};

    /* header; the length is patched in at the end */
    put_bytes(e, MAGIC, 4);
    put_u8(e, TCP_SNAP_VERSION);
    put_u8(e, include_unacked ? TCP_SNAP_FORMAT_UNACKED : 0);
    put_le32(e, 0);

    put_bytes(e, c->local_addr, 16);
    put_bytes(e, c->remote_addr, 16);
    put_le16(e, c->local_port);
    put_le16(e, c->remote_port);
    put_u8(e, c->state);
    put_u8(e, (uint8_t)(c->flags & TCP_CF_EXPORTED));
    put_u8(e, (uint8_t)(c->snd_wscale | c->rcv_wscale << 4));
    put_u8(e, c->cc_algo);
    put_u8(e, c->dupacks);
    put_u8(e, c->backoff);
    put_u8(e, c->ka_probes);
    put_u8(e, (uint8_t)(c->pending & SNAP_PENDING));
    put_le32(e, c->snd_una);
    put_le32(e, c->rcv_nxt);
    put_varint(e, c->snd_off);
    put_varint(e, c->rcv_off);
    put_varint(e, c->snd_nxt - c->snd_una);
    put_varint(e, c->snd_max - c->snd_una);
    put_varint(e, c->snd_wnd);
    put_varint(e, c->max_snd_wnd - c->snd_wnd);
    put_zigzag(e, c->snd_wl1 - c->rcv_nxt);
    put_zigzag(e, c->snd_wl2 - c->snd_una);
    put_varint(e, c->rcv_adv - c->rcv_nxt);
    put_varint(e, c->snd_mss);
    put_varint(e, c->rcv_mss);
    put_varint(e, c->srtt_ms);
    put_varint(e, c->rttvar_ms);
    put_varint(e, c->rto_ms);
    put_varint(e, c->cwnd);
    put_varint(e, c->ssthresh);
    for (i = 0; i < (uint32_t)tcp_cc_state_words(c->cc_algo); i++)
        put_varint(e, c->cc_priv[i]);
    put_zigzag(e, c->recover - c->snd_una);
    if (c->flags & TCP_CF_IN_RECOVERY)
        put_varint(e, c->snd_rxt - c->snd_una);
    if (c->flags & TCP_CF_TS_OK) {
        put_le32(e, c->ts_recent);
        put_le32(e, tcp_ts_now(c, c->frozen_at_ms));
        put_varint(e, c->rcv_nxt - c->last_ack_sent);
    }
    put_u8(e, timers);
    for (i = 0; i < 5; i++)
        if (timers & (1u << i))
            put_varint(e, relative(c, deadlines[i]));
    /* Without the unacknowledged bytes the scoreboard goes too: SACK
     * information may always be forgotten by the sender (RFC 2018 8). */
    if (include_unacked) {
        put_u8(e, c->sack_count);
        for (i = 0; i < c->sack_count; i++) {
            put_varint(e, c->sack[i].start - c->snd_una);
            put_varint(e, c->sack[i].end - c->sack[i].start);
        }
        put_varint(e, ring);
        put_varint(e, c->snd_missing);
        put_varint(e, c->snd_skip);
        p = room(e, ring);
        if (p)
            ring_peek(&c->snd, 0, p, ring);
    } else {
        put_u8(e, 0);
        put_varint(e, 0);
        put_varint(e, (uint64_t)ring + c->snd_missing);
        put_varint(e, 0);
    }
    put_varint(e, readable);
    p = room(e, readable);
    if (p)
        ring_peek(&c->rcv, 0, p, readable);
    if (include_unacked) {
        put_u8(e, (uint8_t)c->reasm.count);
        for (i = 0; i < c->reasm.count; i++) {
            uint32_t off = c->reasm.iv[i].offset, n = c->reasm.iv[i].length;
            put_varint(e, off);
            put_varint(e, n);
            p = room(e, n);
            if (p)
                ring_peek_free(&c->rcv, off, p, n);
        }
    } else {
        put_u8(e, 0); /* a receiver may discard SACKed data, RFC 2018 8 */
    }
    room(e, TCP_SNAP_TRAILER_LEN);
}

static int exportable(const struct tcp_conn *c)
{
    if (c == NULL || tcp_config_check(&c->cfg) != TCP_OK)
        return TCP_SNAP_EINVAL;
    if (!(c->flags & TCP_CF_FROZEN))
        return TCP_SNAP_ENOTFROZEN;
    if (c->state < TCP_SYN_SENT || c->state > TCP_TIME_WAIT)
        return TCP_SNAP_ESTATE;
    return tcp_conn_check(c);
}

int64_t tcp_export_size(const struct tcp_conn *c, int include_unacked)
{
    struct enc e = {NULL, 0, 0};
    int r = exportable(c);

    if (r != TCP_SNAP_OK)
        return r;
    encode(c, include_unacked, &e);
    return e.len > UINT32_MAX ? TCP_SNAP_EDATA : (int64_t)e.len;
}

int64_t tcp_export(const struct tcp_conn *c, int include_unacked, uint8_t *out,
                   size_t cap)
{
    int64_t size = tcp_export_size(c, include_unacked);
    struct enc e;
    uint32_t crc, n;

    if (size < 0)
        return size;
    if (out == NULL || cap < (size_t)size)
        return TCP_SNAP_ENOSPC;
    n = (uint32_t)size;
    e.out = out;
    e.cap = n;
    e.len = 0;
    encode(c, include_unacked, &e);
    out[6] = (uint8_t)n;
    out[7] = (uint8_t)(n >> 8);
    out[8] = (uint8_t)(n >> 16);
    out[9] = (uint8_t)(n >> 24);
    crc = tcp_crc32(0, out, n - TCP_SNAP_TRAILER_LEN);
    out[n - 4] = (uint8_t)crc;
    out[n - 3] = (uint8_t)(crc >> 8);
    out[n - 2] = (uint8_t)(crc >> 16);
    out[n - 1] = (uint8_t)(crc >> 24);
    return n;
}

/* The running connection as its frozen self at now_ms would be exported: a
 * copy of the struct (sharing the rings, which encode only reads) marked so. */
static struct tcp_conn frozen_copy(const struct tcp_conn *c, uint64_t now_ms)
{
    struct tcp_conn t = *c;

    t.flags |= TCP_CF_FROZEN;
    t.frozen_at_ms = now_ms;
    return t;
}

int64_t tcp_replica_size(const struct tcp_conn *c, uint64_t now_ms,
                         int include_unacked)
{
    struct tcp_conn t;

    if (c == NULL)
        return TCP_SNAP_EINVAL;
    t = frozen_copy(c, now_ms);
    return tcp_export_size(&t, include_unacked);
}

int64_t tcp_replica(const struct tcp_conn *c, uint64_t now_ms,
                    int include_unacked, uint8_t *out, size_t cap)
{
    struct tcp_conn t;

    if (c == NULL)
        return TCP_SNAP_EINVAL;
    t = frozen_copy(c, now_ms);
    return tcp_export(&t, include_unacked, out, cap);
}

/* ---- decoding ------------------------------------------------------------ */

struct dec {
    const uint8_t *p;
    size_t pos;
    size_t end;
    int err; /* first fault, TCP_SNAP_OK while none */
};

static void fail(struct dec *d, int err)
{
    if (d->err == TCP_SNAP_OK)
        d->err = err;
}

static const uint8_t *take(struct dec *d, size_t n)
{
    const uint8_t *p;

    if (d->err != TCP_SNAP_OK)
        return NULL;
    if (n > d->end - d->pos) {
        fail(d, TCP_SNAP_EVARINT);
        return NULL;
    }
    p = d->p + d->pos;
    d->pos += n;
    return p;
}

static void get_bytes(struct dec *d, uint8_t *dst, size_t n)
{
    const uint8_t *p = take(d, n);
    if (p)
        memcpy(dst, p, n);
    else
        memset(dst, 0, n);
}

static uint8_t get_u8(struct dec *d)
{
    const uint8_t *p = take(d, 1);
    return p ? p[0] : 0;
}

static uint16_t get_le16(struct dec *d)
{
    const uint8_t *p = take(d, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t get_le32(struct dec *d)
{
    const uint8_t *p = take(d, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24
             : 0;
}

/* A shortest-form LEB128 of at most `max`; anything else sets EVARINT. */
static uint64_t get_varint(struct dec *d, uint64_t max)
{
    uint64_t v = 0;
    unsigned shift = 0;

    for (;;) {
        const uint8_t *p = take(d, 1);
        uint8_t b;
        if (p == NULL)
            return 0;
        b = *p;
        if (shift == 63 && (b & 0x7E)) { /* beyond 64 bits */
            fail(d, TCP_SNAP_EVARINT);
            return 0;
        }
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0) { /* not the shortest form */
                fail(d, TCP_SNAP_EVARINT);
                return 0;
            }
            break;
        }
        shift += 7;
        if (shift > 63) {
            fail(d, TCP_SNAP_EVARINT);
            return 0;
        }
    }
    if (v > max) {
        fail(d, TCP_SNAP_EVARINT);
        return 0;
    }
    return v;
}

static uint32_t get_u32v(struct dec *d)
{
    return (uint32_t)get_varint(d, UINT32_MAX);
}

static uint32_t get_zigzag(struct dec *d)
{
    uint32_t z = get_u32v(d);
    return (z >> 1) ^ (0u - (z & 1));
}

struct ooo {
    uint32_t offset;
    uint32_t length;
    const uint8_t *bytes;
};

int tcp_import(const uint8_t *blob, size_t len, struct tcp_conn *c)
{
    struct dec d;
    struct tcp_conn t;
    struct ooo ooo[TCP_REASM_MAX_INTERVALS];
    const uint8_t *snd_bytes, *rcv_bytes;
    uint32_t total, snd_present, readable, nooo, i, prev_end = 0;
    uint32_t nxt_d, max_d, mss, tsval = 0, lag = 0, rxt_d = 0;
    uint64_t maxwnd_d, missing, skip;
    uint8_t format, wscale, timers, pending, nsack;
    int r;

    if (blob == NULL || c == NULL || tcp_config_check(&c->cfg) != TCP_OK ||
        !ring_valid(&c->snd) || !ring_valid(&c->rcv))
        return TCP_SNAP_EINVAL;
    if (len < TCP_SNAP_HEADER_LEN + TCP_SNAP_TRAILER_LEN)
        return TCP_SNAP_ETRUNCATED;
    if (memcmp(blob, MAGIC, 4) != 0)
        return TCP_SNAP_EMAGIC;
    if (blob[4] != TCP_SNAP_VERSION)
        return TCP_SNAP_EVERSION;
    total = (uint32_t)blob[6] | (uint32_t)blob[7] << 8 |
            (uint32_t)blob[8] << 16 | (uint32_t)blob[9] << 24;
    if (total > len)
        return TCP_SNAP_ETRUNCATED;
    if (total < len || total < TCP_SNAP_HEADER_LEN + TCP_SNAP_TRAILER_LEN)
        return TCP_SNAP_ELENGTH;
    if (tcp_crc32(0, blob, len - 4) !=
        ((uint32_t)blob[len - 4] | (uint32_t)blob[len - 3] << 8 |
         (uint32_t)blob[len - 2] << 16 | (uint32_t)blob[len - 1] << 24))
        return TCP_SNAP_ECRC;
    format = blob[5];
    if (format & ~TCP_SNAP_FORMAT_UNACKED)
        return TCP_SNAP_EFLAGS;

    /* A fresh connection with the importer's settings and rings. */
    memset(&t, 0, sizeof t);
    t.cfg = c->cfg;
    t.snd = c->snd;
    t.rcv = c->rcv;
    t.snd.head = t.snd.length = 0;
    t.rcv.head = t.rcv.length = 0;
    reasm_init(&t.reasm, c->cfg.reasm_limit);

    d.p = blob;
    d.pos = TCP_SNAP_HEADER_LEN;
    d.end = len - TCP_SNAP_TRAILER_LEN;
    d.err = TCP_SNAP_OK;

    get_bytes(&d, t.local_addr, 16);
    get_bytes(&d, t.remote_addr, 16);
    t.local_port = get_le16(&d);
    t.remote_port = get_le16(&d);
    t.state = get_u8(&d);
    t.flags = get_u8(&d);
    wscale = get_u8(&d);
    t.snd_wscale = wscale & 0x0F;
    t.rcv_wscale = wscale >> 4;
    t.cc_algo = get_u8(&d);
    t.dupacks = get_u8(&d);
    t.backoff = get_u8(&d);
    t.ka_probes = get_u8(&d);
    pending = get_u8(&d);
    t.snd_una = get_le32(&d);
    t.rcv_nxt = get_le32(&d);
    t.snd_off = get_varint(&d, UINT64_MAX);
    t.rcv_off = get_varint(&d, UINT64_MAX);
    nxt_d = get_u32v(&d);
    max_d = get_u32v(&d);
    t.snd_wnd = get_u32v(&d);
    maxwnd_d = get_u32v(&d);
    t.snd_wl1 = t.rcv_nxt + get_zigzag(&d);
    t.snd_wl2 = t.snd_una + get_zigzag(&d);
    t.rcv_adv = t.rcv_nxt + get_u32v(&d);
    mss = get_u32v(&d);
    t.snd_mss = (uint16_t)mss;
    if (mss > 65535)
        fail(&d, TCP_SNAP_EOPTIONS);
    mss = get_u32v(&d);
    t.rcv_mss = (uint16_t)mss;
    if (mss > 65535)
        fail(&d, TCP_SNAP_EOPTIONS);
    t.srtt_ms = get_u32v(&d);
    t.rttvar_ms = get_u32v(&d);
    t.rto_ms = get_u32v(&d);
    t.cwnd = get_u32v(&d);
    t.ssthresh = get_u32v(&d);
    if (d.err == TCP_SNAP_OK && t.cc_algo >= TCP_CC_COUNT)
        fail(&d, TCP_SNAP_ECONGESTION); /* its state cannot be read */
    for (i = 0; i < (uint32_t)tcp_cc_state_words(t.cc_algo); i++)
        t.cc_priv[i] = get_u32v(&d);
    t.recover = t.snd_una + get_zigzag(&d);
    if (t.flags & TCP_CF_IN_RECOVERY)
        rxt_d = get_u32v(&d);
    if (t.flags & TCP_CF_TS_OK) {
        t.ts_recent = get_le32(&d);
        tsval = get_le32(&d);
        lag = get_u32v(&d);
    }
    timers = get_u8(&d);
    t.t_rtx = timers & SNAP_T_RTX ? get_u32v(&d) : TCP_NO_DEADLINE;
    t.t_delack = timers & SNAP_T_DELACK ? get_u32v(&d) : TCP_NO_DEADLINE;
    t.t_persist = timers & SNAP_T_PERSIST ? get_u32v(&d) : TCP_NO_DEADLINE;
    t.t_keepalive = timers & SNAP_T_KEEPALIVE ? get_u32v(&d) : TCP_NO_DEADLINE;
    t.t_timewait = timers & SNAP_T_TIMEWAIT ? get_u32v(&d) : TCP_NO_DEADLINE;
    t.t_rcv_resync = TCP_NO_DEADLINE; /* tcp_resync's wait is not carried */
    t.t_tlp = TCP_NO_DEADLINE;        /* nor the loss probe (RFC 8985 7) */
    t.t_rxt_lost = TCP_NO_DEADLINE;   /* nor a retransmission's watch (6.2) */
    t.rcv_resync_to = 0;
    t.dupacks_owed = 0;
    t.rcv_resync_wait_ms = 0;
    nsack = get_u8(&d);
    if (d.err == TCP_SNAP_OK && nsack > TCP_SACK_MAX)
        fail(&d, TCP_SNAP_ESACK);
    for (i = 0; i < nsack && d.err == TCP_SNAP_OK; i++) {
        uint32_t l = get_u32v(&d), n = get_u32v(&d);
        t.sack[i].start = t.snd_una + l;
        t.sack[i].end = t.snd_una + l + n;
        if (n == 0 || (uint64_t)l + n > UINT32_MAX)
            fail(&d, TCP_SNAP_ESACK);
    }
    t.sack_count = nsack;
    snd_present = get_u32v(&d);
    missing = get_u32v(&d);
    skip = get_u32v(&d);
    if (d.err == TCP_SNAP_OK && snd_present > ring_capacity(&c->snd))
        fail(&d, TCP_SNAP_ERING);
    snd_bytes = take(&d, snd_present);
    readable = get_u32v(&d);
    if (d.err == TCP_SNAP_OK && readable > ring_capacity(&c->rcv))
        fail(&d, TCP_SNAP_ERING);
    rcv_bytes = take(&d, readable);
    nooo = get_u8(&d);
    if (d.err == TCP_SNAP_OK && nooo > TCP_REASM_MAX_INTERVALS)
        fail(&d, TCP_SNAP_EDATA);
    if (d.err == TCP_SNAP_OK && nooo > c->cfg.reasm_limit)
        fail(&d, TCP_SNAP_ERING);
    for (i = 0; i < nooo && d.err == TCP_SNAP_OK; i++) {
        ooo[i].offset = get_u32v(&d);
        ooo[i].length = get_u32v(&d);
        if (d.err != TCP_SNAP_OK)
            break;
        /* sorted, apart, non-empty, never at offset 0 (that would be
         * readable), inside the importer's free space */
        if (ooo[i].length == 0 || ooo[i].offset <= prev_end ||
            (uint64_t)ooo[i].offset + ooo[i].length > UINT32_MAX) {
            fail(&d, TCP_SNAP_EDATA);
            break;
        }
        if ((uint64_t)ooo[i].offset + ooo[i].length >
            ring_capacity(&c->rcv) - readable) {
            fail(&d, TCP_SNAP_ERING);
            break;
        }
        prev_end = ooo[i].offset + ooo[i].length;
        ooo[i].bytes = take(&d, ooo[i].length);
    }
    if (d.err != TCP_SNAP_OK)
        return d.err;
    if (d.pos != d.end)
        return TCP_SNAP_ETRAILING;

    /* Field ranges the consistency check does not see. */
    if (t.state < TCP_SYN_SENT || t.state > TCP_TIME_WAIT)
        return TCP_SNAP_ESTATE;
    if (pending & ~SNAP_PENDING)
        return TCP_SNAP_EFLAGS;
    if (timers & ~0x1Fu)
        return TCP_SNAP_ETIMER;
    if (nxt_d > max_d)
        return TCP_SNAP_ESEQUENCE;
    if (maxwnd_d + t.snd_wnd > TCP_MAX_WINDOW)
        return TCP_SNAP_EWINDOW;
    if (missing > TCP_RING_MAX_CAPACITY || skip > TCP_RING_MAX_CAPACITY)
        return TCP_SNAP_EDATA;
    if ((t.flags & TCP_CF_IN_RECOVERY) && rxt_d > max_d)
        return TCP_SNAP_ESEQUENCE;
    if (!(format & TCP_SNAP_FORMAT_UNACKED)) {
        /* the short form carries no bytes to retransmit and no scoreboard */
        if (snd_present != 0 || skip != 0 || nooo != 0)
            return TCP_SNAP_EDATA;
        if (nsack != 0)
            return TCP_SNAP_ESACK;
    }

    t.snd_nxt = t.snd_una + nxt_d;
    t.snd_max = t.snd_una + max_d;
    t.max_snd_wnd = t.snd_wnd + (uint32_t)maxwnd_d;
    t.snd_rxt = (t.flags & TCP_CF_IN_RECOVERY) ? t.snd_una + rxt_d : t.snd_una;
    t.snd_missing = (uint32_t)missing;
    t.snd_skip = (uint32_t)skip;
    t.pending = pending;
    /* Derived: ISS and IRS only matter before synchronization. */
    if (t.state == TCP_SYN_SENT || t.state == TCP_SYN_RECEIVED) {
        t.iss = t.snd_una;
        t.irs = t.rcv_nxt - 1;
    } else {
        t.iss = t.snd_una - (uint32_t)t.snd_off - 1;
        t.irs = t.rcv_nxt - (uint32_t)t.rcv_off - 1;
    }
    if (t.state == TCP_CLOSE_WAIT || t.state == TCP_CLOSING ||
        t.state == TCP_LAST_ACK || t.state == TCP_TIME_WAIT) {
        t.flags |= TCP_CF_RCV_FIN;
        t.irs--;
    }
    if (t.flags & TCP_CF_TS_OK) {
        t.ts_offset = tsval; /* TSval = 0 + ts_offset on the frozen clock */
        t.last_ack_sent = t.rcv_nxt - lag;
    } else {
        t.last_ack_sent = t.rcv_nxt;
    }
    t.flags |= TCP_CF_FROZEN;
    t.frozen_at_ms = 0;
    t.snd.length = snd_present;
    t.rcv.length = readable;
    t.reasm.count = nooo;
    for (i = 0; i < nooo; i++) {
        t.reasm.iv[i].offset = ooo[i].offset;
        t.reasm.iv[i].length = ooo[i].length;
    }

    r = tcp_conn_check(&t);
    if (r != TCP_SNAP_OK)
        return r;

    /* Valid: commit, then copy the bytes. */
    *c = t;
    if (snd_present > 0)
        memcpy(c->snd.buf, snd_bytes, snd_present);
    if (readable > 0)
        memcpy(c->rcv.buf, rcv_bytes, readable);
    for (i = 0; i < nooo; i++)
        ring_write_at(&c->rcv, ooo[i].offset, ooo[i].bytes, ooo[i].length);
    return TCP_SNAP_OK;
}
