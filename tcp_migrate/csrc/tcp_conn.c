/* tcp_conn.c: see tcp_conn.h.  Section numbers are RFC 9293's unless another
 * RFC is named. */
#include "tcp_conn.h"

#include <string.h>

#include "tcp_cc.h"
#include "tcp_seq.h"
#include "tcp_snapshot.h"

/* Control bits, RFC 9293 3.1 (low byte of header bytes 12-13). */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20

/* Option kinds. */
#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WSCALE 3
#define OPT_SACK_PERMITTED 4
#define OPT_SACK 5
#define OPT_TIMESTAMPS 8

#define TS_OPTION_SPACE 12 /* NOP NOP kind len TSval TSecr */
#define PAWS_IDLE_MS 2073600000ull /* RFC 7323 5.5: 24 days */
#define TLP_WCDELACK_MS 200 /* RFC 8985 7.2 WCDelAckT: worst-case delayed ACK */
#define TLP_MIN_PTO_MS 10   /* Linux's floor for the PTO, before it went to 2 jiffies */

/* A parsed incoming segment. */
struct seg {
    uint32_t seq;
    uint32_t ack;
    uint8_t flags;
    uint16_t wnd; /* the raw 16-bit field */
    const uint8_t *data;
    uint32_t len;     /* payload bytes */
    uint32_t seg_len; /* SEG.LEN: payload + SYN + FIN */
    uint8_t has_mss, has_ws, has_sack_ok, has_ts, nsack;
    uint16_t mss;
    uint8_t ws;
    uint32_t tsval, tsecr;
    uint32_t sack[4][2];
};

/* ---- small helpers -------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t min32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint32_t max32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

static bool frozen(const struct tcp_conn *c)
{
    return (c->flags & TCP_CF_FROZEN) != 0;
}

static bool syn_state(const struct tcp_conn *c)
{
    return c->state == TCP_SYN_SENT || c->state == TCP_SYN_RECEIVED;
}

/* States in which our data or FIN may still be (re)transmitted. */
static bool sending_state(const struct tcp_conn *c)
{
    switch (c->state) {
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT_1:
    case TCP_CLOSE_WAIT:
    case TCP_CLOSING:
    case TCP_LAST_ACK:
        return true;
    default:
        return false;
    }
}

uint32_t tcp_ts_now(const struct tcp_conn *c, uint64_t now_ms)
{
    return (uint32_t)now_ms + c->ts_offset;
}

uint32_t tcp_smss(const struct tcp_conn *c)
{
    uint32_t mss = c->snd_mss;

    if (c->flags & TCP_CF_TS_OK)
        mss = mss > TS_OPTION_SPACE ? mss - TS_OPTION_SPACE : 1;
    return mss > 0 ? mss : 1;
}

bool tcp_limit_mss(struct tcp_conn *c, uint32_t mss)
{
    mss = max32(mss, TCP_MIN_MSS);
    if (mss >= c->snd_mss)
        return false;
    /* RFC 9293 3.7.1: Eff.snd.MSS is bounded by what the path's MTU allows
     * (MMS_S), which RFC 8201 lets a Packet Too Big lower at any time */
    c->snd_mss = (uint16_t)mss;
    return true;
}

/* Data bytes per full-sized segment the peer sends us. */
static uint32_t rcv_smss(const struct tcp_conn *c)
{
    uint32_t mss = c->rcv_mss;

    if (c->flags & TCP_CF_TS_OK)
        mss = mss > TS_OPTION_SPACE ? mss - TS_OPTION_SPACE : 1;
    return mss > 0 ? mss : 1;
}

/* ---- checksum ------------------------------------------------------------- */

static uint64_t sum16(uint64_t sum, const uint8_t *p, size_t n)
{
    while (n > 1) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        n -= 2;
    }
    if (n)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

/* RFC 9293 3.1 with the IPv6 pseudo-header of RFC 8200 8.1: the one's
 * complement of the one's complement sum.  Over a segment whose checksum
 * field is filled in, a valid segment gives 0. */
uint16_t tcp_checksum(const uint8_t *src, const uint8_t *dst,
                      const uint8_t *segment, size_t len)
{
    uint8_t tail[8];
    uint64_t sum = 0;

    if (src == NULL || dst == NULL || (segment == NULL && len > 0) ||
        len > UINT32_MAX)
        return 0xFFFF;
    put32(tail, (uint32_t)len);
    tail[4] = tail[5] = tail[6] = 0;
    tail[7] = 6; /* Next Header: TCP */
    sum = sum16(sum, src, 16);
    sum = sum16(sum, dst, 16);
    sum = sum16(sum, tail, 8);
    sum = sum16(sum, segment, len);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

/* ---- segment parsing ------------------------------------------------------ */

/* Options in seg[20 .. hlen).  RFC 9293 3.1: unknown options are skipped;
 * MUST-7: "handle an illegal option length (e.g., zero) without crashing":
 * such a segment is dropped (a RST, the suggested alternative, would let a
 * blind attacker kill the connection). */
static int parse_options(const uint8_t *p, uint32_t hlen, struct seg *s)
{
    uint32_t i = TCP_HEADER_LEN;

    while (i < hlen) {
        uint8_t kind = p[i], olen;

        if (kind == OPT_EOL)
            break;
        if (kind == OPT_NOP) {
            i++;
            continue;
        }
        if (hlen - i < 2)
            return TCP_IN_MALFORMED;
        olen = p[i + 1];
        if (olen < 2 || olen > hlen - i)
            return TCP_IN_MALFORMED;
        switch (kind) {
        case OPT_MSS:
            if (olen != 4)
                return TCP_IN_MALFORMED;
            s->has_mss = 1;
            s->mss = get16(p + i + 2);
            break;
        case OPT_WSCALE:
            if (olen != 3)
                return TCP_IN_MALFORMED;
            s->has_ws = 1;
            s->ws = p[i + 2];
            break;
        case OPT_SACK_PERMITTED:
            if (olen != 2)
                return TCP_IN_MALFORMED;
            s->has_sack_ok = 1;
            break;
        case OPT_SACK: {
            /* RFC 2018 3: length 8*n+2, n = 1..4 */
            uint32_t n = (uint32_t)(olen - 2) / 8, k;
            if ((olen - 2) % 8 != 0 || n < 1 || n > 4)
                return TCP_IN_MALFORMED;
            for (k = 0; k < n; k++) {
                s->sack[k][0] = get32(p + i + 2 + 8 * k);
                s->sack[k][1] = get32(p + i + 6 + 8 * k);
            }
            s->nsack = (uint8_t)n;
            break;
        }
        case OPT_TIMESTAMPS:
            if (olen != 10)
                return TCP_IN_MALFORMED;
            s->has_ts = 1;
            s->tsval = get32(p + i + 2);
            s->tsecr = get32(p + i + 6);
            break;
        default:
            break;
        }
        i += olen;
    }
    return TCP_IN_OK;
}

static int parse_segment(const struct tcp_conn *c, const uint8_t *p,
                         size_t len, struct seg *s)
{
    uint32_t hlen;
    int r;

    memset(s, 0, sizeof *s);
    if (p == NULL || len < TCP_HEADER_LEN || len > 0x7FFFFFFF)
        return TCP_IN_MALFORMED;
    hlen = (uint32_t)(p[12] >> 4) * 4;
    if (hlen < TCP_HEADER_LEN || hlen > len)
        return TCP_IN_MALFORMED;
    r = parse_options(p, hlen, s);
    if (r != TCP_IN_OK)
        return r;
    if (tcp_checksum(c->remote_addr, c->local_addr, p, len) != 0)
        return TCP_IN_BAD_CHECKSUM;
    if (get16(p) != c->remote_port || get16(p + 2) != c->local_port)
        return TCP_IN_WRONG_PORTS;
    s->seq = get32(p + 4);
    s->ack = get32(p + 8);
    s->flags = p[13]; /* the reserved bits and NS/AE are ignored */
    s->wnd = get16(p + 14);
    s->data = p + hlen;
    s->len = (uint32_t)(len - hlen);
    s->seg_len = s->len + ((s->flags & TH_SYN) ? 1 : 0) +
                 ((s->flags & TH_FIN) ? 1 : 0);
    return TCP_IN_OK;
}

/* ---- settings and set-up --------------------------------------------------- */

void tcp_config_default(struct tcp_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->rto_initial_ms = 1000;
    cfg->rto_min_ms = 1000;
    cfg->rto_max_ms = 60000;
    cfg->delack_ms = 200;
    cfg->time_wait_ms = 240000;
    cfg->keepalive_idle_ms = 0;
    cfg->keepalive_intvl_ms = 75000;
    cfg->keepalive_count = 9;
    cfg->challenge_ack_limit = 10;
    cfg->max_retries = 15;
    cfg->syn_retries = 6;
    cfg->mss = 1440;
    cfg->sack = 1;
    cfg->timestamps = 1;
    cfg->window_scaling = 1;
    cfg->nodelay = 0;
    cfg->cc_algo = TCP_CC_NEWRENO;
    cfg->reasm_limit = 8;
    cfg->initial_window = 0;
}

int tcp_config_check(const struct tcp_config *cfg)
{
    if (cfg == NULL)
        return TCP_EINVAL;
    if (cfg->rto_min_ms < 1 || cfg->rto_max_ms < cfg->rto_min_ms ||
        cfg->rto_max_ms > TCP_RTT_LIMIT_MS || cfg->rto_initial_ms < 1 ||
        cfg->rto_initial_ms > cfg->rto_max_ms)
        return TCP_EINVAL;
    if (cfg->delack_ms > 500) /* RFC 9293 3.8.6.3: MUST be less than 0.5 s */
        return TCP_EINVAL;
    if (cfg->keepalive_idle_ms > 0 && (cfg->keepalive_intvl_ms < 1 ||
                                       cfg->keepalive_count < 1))
        return TCP_EINVAL;
    if (cfg->max_retries > TCP_MAX_BACKOFF || cfg->syn_retries > TCP_MAX_BACKOFF)
        return TCP_EINVAL;
    if (cfg->mss < TCP_MIN_MSS || cfg->cc_algo >= TCP_CC_COUNT ||
        cfg->reasm_limit < 1 || cfg->reasm_limit > TCP_REASM_MAX_INTERVALS ||
        cfg->initial_window > TCP_IW_MAX)
        return TCP_EINVAL;
    if (cfg->sack > 1 || cfg->timestamps > 1 || cfg->window_scaling > 1 ||
        cfg->nodelay > 1)
        return TCP_EINVAL;
    return TCP_OK;
}

/* Everything but identity, settings and ring memory back to a fresh CLOSED
 * connection with empty rings. */
static void reset_state(struct tcp_conn *c)
{
    struct tcp_conn keep = *c;

    memset(c, 0, sizeof *c);
    memcpy(c->local_addr, keep.local_addr, 16);
    memcpy(c->remote_addr, keep.remote_addr, 16);
    c->local_port = keep.local_port;
    c->remote_port = keep.remote_port;
    c->cfg = keep.cfg;
    c->snd = keep.snd;
    c->rcv = keep.rcv;
    c->snd.head = c->snd.length = 0;
    c->rcv.head = c->rcv.length = 0;
    reasm_init(&c->reasm, c->cfg.reasm_limit);
    c->state = TCP_CLOSED;
    c->cc_algo = c->cfg.cc_algo;
    c->snd_mss = (uint16_t)min32(TCP_DEFAULT_MSS, c->cfg.mss);
    c->rcv_mss = c->cfg.mss;
    c->rto_ms = c->cfg.rto_initial_ms;
    c->cwnd = tcp_smss(c);
    c->ssthresh = TCP_MAX_WINDOW;
    c->t_rtx = c->t_delack = c->t_persist = TCP_NO_DEADLINE;
    c->t_keepalive = c->t_timewait = c->t_rcv_resync = TCP_NO_DEADLINE;
    c->t_tlp = c->t_rxt_lost = TCP_NO_DEADLINE;
}

int tcp_conn_init(struct tcp_conn *c, const struct tcp_config *cfg,
                  const uint8_t *local_addr, uint16_t local_port,
                  const uint8_t *remote_addr, uint16_t remote_port,
                  uint8_t *snd_mem, size_t snd_cap, uint8_t *rcv_mem,
                  size_t rcv_cap)
{
    struct tcp_ring snd, rcv;

    if (c == NULL || local_addr == NULL || remote_addr == NULL ||
        tcp_config_check(cfg) != TCP_OK)
        return TCP_EINVAL;
    if (ring_init(&snd, snd_mem, snd_cap) != TCP_RING_OK ||
        ring_init(&rcv, rcv_mem, rcv_cap) != TCP_RING_OK)
        return TCP_EINVAL;
    memset(c, 0, sizeof *c);
    memcpy(c->local_addr, local_addr, 16);
    memcpy(c->remote_addr, remote_addr, 16);
    c->local_port = local_port;
    c->remote_port = remote_port;
    c->cfg = *cfg;
    c->snd = snd;
    c->rcv = rcv;
    reset_state(c);
    return TCP_OK;
}

/* RFC 7323 2.3: the smallest shift that lets the window cover the buffer. */
static uint8_t choose_wscale(const struct tcp_conn *c)
{
    uint32_t cap = (uint32_t)ring_capacity(&c->rcv);
    uint8_t s = 0;

    while (s < TCP_MAX_WSCALE && (cap >> s) > 65535)
        s++;
    return s;
}

/* Options of the peer's SYN or SYN-ACK; both ends must offer an option for
 * it to be used (RFC 7323 1.3, 2.2; RFC 2018 2). */
static void negotiate(struct tcp_conn *c, uint64_t now, const struct seg *s)
{
    uint32_t mss = s->has_mss ? s->mss : TCP_DEFAULT_MSS;

    /* RFC 9293 3.7.1: Eff.snd.MSS from the peer's MSS and our own limit */
    mss = max32(mss, TCP_MIN_MSS);
    c->snd_mss = (uint16_t)min32(mss, c->cfg.mss);
    if (c->cfg.window_scaling && s->has_ws) {
        c->flags |= TCP_CF_WS_OK;
        /* RFC 7323 2.3: "MUST use 14 instead of the specified value" */
        c->snd_wscale = s->ws > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : s->ws;
        c->rcv_wscale = choose_wscale(c);
    } else {
        c->flags &= (uint16_t)~TCP_CF_WS_OK;
        c->snd_wscale = c->rcv_wscale = 0;
    }
    if (c->cfg.sack && s->has_sack_ok)
        c->flags |= TCP_CF_SACK_OK;
    if (c->cfg.timestamps && s->has_ts) {
        c->flags |= TCP_CF_TS_OK;
        c->ts_recent = s->tsval;
        c->ts_recent_ms = now;
    }
}

int tcp_open_active(struct tcp_conn *c, uint64_t now_ms, uint32_t iss,
                    uint32_t ts_offset)
{
    (void)now_ms;
    if (c == NULL || tcp_config_check(&c->cfg) != TCP_OK)
        return TCP_EINVAL;
    if (c->state != TCP_CLOSED || frozen(c))
        return TCP_ESTATE;
    reset_state(c);
    c->iss = c->snd_una = c->snd_nxt = c->snd_max = iss;
    c->recover = iss; /* RFC 6582 3.2 step 1 */
    c->ts_offset = ts_offset;
    c->rcv_wscale = c->cfg.window_scaling ? choose_wscale(c) : 0;
    c->state = TCP_SYN_SENT;
    c->pending = TCP_PEND_SYN;
    return TCP_OK;
}

int tcp_open_passive(struct tcp_conn *c, uint64_t now_ms,
                     const uint8_t *segment, size_t len, uint32_t iss,
                     uint32_t ts_offset)
{
    struct seg s;
    int r;

    if (c == NULL || tcp_config_check(&c->cfg) != TCP_OK)
        return TCP_EINVAL;
    if (c->state != TCP_CLOSED || frozen(c))
        return TCP_ESTATE;
    r = parse_segment(c, segment, len, &s);
    if (r != TCP_IN_OK)
        return r;
    /* 3.10.7.2 LISTEN: RST ignored; an ACK gets a RST (the listener's job);
     * only a SYN opens.  Data and FIN on the SYN are not accepted (no TFO):
     * the peer sends them again. */
    if ((s.flags & (TH_RST | TH_ACK)) || !(s.flags & TH_SYN))
        return TCP_IN_DROPPED;
    reset_state(c);
    c->iss = c->snd_una = c->snd_nxt = c->snd_max = iss;
    c->recover = iss;
    c->ts_offset = ts_offset;
    c->irs = s.seq;
    c->rcv_nxt = s.seq + 1;
    c->rcv_adv = c->rcv_nxt;
    c->last_ack_sent = c->rcv_nxt;
    negotiate(c, now_ms, &s);
    c->snd_wnd = c->max_snd_wnd = s.wnd; /* never scaled in a SYN */
    c->snd_wl1 = s.seq;
    c->snd_wl2 = iss;
    c->flags |= TCP_CF_PASSIVE;
    c->state = TCP_SYN_RECEIVED;
    c->pending = TCP_PEND_SYN;
    return TCP_IN_OK;
}

/* ---- timers ----------------------------------------------------------------- */

static uint64_t after(uint64_t now, uint64_t ms)
{
    return now > TCP_NO_DEADLINE - 1 - ms ? TCP_NO_DEADLINE - 1 : now + ms;
}

/* rto_ms doubled `backoff` times, at most rto_max_ms. */
static uint32_t backed_off(const struct tcp_conn *c)
{
    uint64_t v = c->rto_ms;
    uint32_t i;

    for (i = 0; i < c->backoff && v < c->cfg.rto_max_ms; i++)
        v *= 2;
    return (uint32_t)(v < c->cfg.rto_max_ms ? v : c->cfg.rto_max_ms);
}

/* Sequence number just after the last data byte of the stream known so far
 * (in the ring or still to be written again by the application). */
static uint32_t data_end(const struct tcp_conn *c)
{
    return c->snd_una + (uint32_t)ring_length(&c->snd) + c->snd_missing;
}

static bool fin_queued(const struct tcp_conn *c)
{
    return (c->flags & TCP_CF_FIN_QUEUED) != 0;
}

/* Data in the ring at or after SND.NXT, or a FIN not yet sent. */
static bool has_unsent(const struct tcp_conn *c)
{
    uint32_t off = c->snd_nxt - c->snd_una;

    if (off < ring_length(&c->snd))
        return true;
    return fin_queued(c) && c->snd_missing == 0 &&
           seq_leq(c->snd_nxt, data_end(c));
}

/* RFC 8985 7.2: "A sender SHOULD schedule a PTO only if all of the
 * following conditions are met: (1) The connection supports SACK, (2) The
 * connection has no SACKed sequences in the SACK scoreboard, (3) The
 * connection is not in loss recovery."  Loss recovery here is fast recovery
 * and a timeout's, which lasts until SND.UNA passes recover (a timeout sets
 * it to SND.MAX; the back-off clears at the first new ACK).  Besides: data
 * outstanding in an open window, none being sent again after a timeout, no
 * probe outstanding (7.3: one per episode), no tcp_resync probe. */
static bool pto_allowed(const struct tcp_conn *c)
{
    return sending_state(c) && (c->flags & TCP_CF_SACK_OK) && c->sack_count == 0 &&
           !(c->flags & (TCP_CF_IN_RECOVERY | TCP_CF_TLP | TCP_CF_RESYNC)) &&
           c->backoff == 0 && seq_lt(c->recover, c->snd_una) &&
           c->snd_max != c->snd_una && c->snd_nxt == c->snd_max && c->snd_wnd > 0;
}

/* RFC 8985 7.2: PTO = 2 * SRTT, plus WCDelAckT when FlightSize is one
 * segment (its ACK may wait for the receiver's delayed-ACK timer); 1 s
 * without an RTT sample.  At least TLP_MIN_PTO_MS: with SRTT near zero (a
 * LAN) a probe would otherwise go out before the receiver could answer. */
static uint32_t pto_ms(const struct tcp_conn *c)
{
    uint32_t pto;

    if (c->srtt_ms == 0)
        return 1000;
    pto = 2 * c->srtt_ms;
    if (c->snd_max - c->snd_una <= tcp_smss(c))
        pto += TLP_WCDELACK_MS;
    return max32(pto, TLP_MIN_PTO_MS);
}

/* RFC 8985 7.2: the PTO, armed when allowed and not running (a new ACK and
 * new data restart it); not at all when the RTO would fire first. */
static void arm_pto(struct tcp_conn *c, uint64_t now)
{
    uint64_t d;

    if (!pto_allowed(c)) {
        c->t_tlp = TCP_NO_DEADLINE;
        c->pending &= (uint8_t)~TCP_PEND_TLP; /* a probe no longer due */
        return;
    }
    if (c->t_tlp != TCP_NO_DEADLINE)
        return;
    d = after(now, pto_ms(c));
    if (d < c->t_rtx)
        c->t_tlp = d;
}

/* Retransmission timer while something is outstanding, persist timer while
 * unsent data waits for the window (RFC 9293 3.8.6.1); never both.  The
 * loss probe's timer beside the retransmission timer (arm_pto). */
static void update_timers(struct tcp_conn *c, uint64_t now)
{
    if (c->flags & TCP_CF_RESYNC) { /* the probe's timer (tcp_resync) */
        if (c->t_rtx == TCP_NO_DEADLINE)
            c->t_rtx = after(now, c->rto_ms);
        c->t_tlp = TCP_NO_DEADLINE;
        return;
    }
    if (syn_state(c)) {
        c->t_persist = c->t_tlp = TCP_NO_DEADLINE;
        if (c->snd_max != c->snd_una && c->t_rtx == TCP_NO_DEADLINE)
            c->t_rtx = after(now, c->rto_ms);
        return;
    }
    if (!sending_state(c)) {
        c->t_rtx = c->t_persist = c->t_tlp = TCP_NO_DEADLINE;
        return;
    }
    if (c->snd_max != c->snd_una) {
        if (c->snd_wnd == 0 && c->t_persist != TCP_NO_DEADLINE) {
            c->t_rtx = TCP_NO_DEADLINE; /* probing a zero window */
        } else {
            c->t_persist = TCP_NO_DEADLINE;
            if (c->t_rtx == TCP_NO_DEADLINE) /* RFC 6298 (5.1) */
                c->t_rtx = after(now, c->rto_ms);
        }
    } else {
        c->t_rtx = TCP_NO_DEADLINE; /* RFC 6298 (5.2) */
        if (!has_unsent(c))
            c->t_persist = TCP_NO_DEADLINE;
        else if (c->t_persist == TCP_NO_DEADLINE)
            c->t_persist = after(now, backed_off(c));
    }
    arm_pto(c, now);
}

static void arm_keepalive(struct tcp_conn *c, uint64_t now)
{
    if (c->cfg.keepalive_idle_ms > 0 &&
        (c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT))
        c->t_keepalive = after(now, c->cfg.keepalive_idle_ms);
    else
        c->t_keepalive = TCP_NO_DEADLINE;
    c->ka_probes = 0;
}

/* ---- state changes ---------------------------------------------------------- */

static void queue_rst(struct tcp_conn *c, uint32_t seq, uint32_t ack,
                      uint8_t flags)
{
    if (frozen(c))
        return; /* a frozen connection never sends a RST */
    c->reply_seq = seq;
    c->reply_ack = ack;
    c->reply_flags = flags;
    c->pending |= TCP_PEND_RST;
}

static void close_conn(struct tcp_conn *c, uint8_t reason)
{
    c->state = TCP_CLOSED;
    c->close_reason = reason;
    c->pending = 0;
    c->t_rtx = c->t_delack = c->t_persist = TCP_NO_DEADLINE;
    c->t_keepalive = c->t_timewait = c->t_rcv_resync = TCP_NO_DEADLINE;
    c->t_tlp = c->t_rxt_lost = TCP_NO_DEADLINE;
    c->dupacks_owed = 0;
    c->flags &= (uint16_t) ~(TCP_CF_IN_RECOVERY | TCP_CF_PARTIAL_SEEN |
                             TCP_CF_RTT_TIMING | TCP_CF_TLP | TCP_CF_TLP_RXT |
                             TCP_CF_RXT_WATCH);
    c->sack_count = 0;
    if (reason != TCP_CLOSE_NORMAL) {
        /* 3.10.7.4: "all segment queues should be flushed" */
        ring_consume(&c->snd, ring_length(&c->snd));
        ring_consume(&c->rcv, ring_length(&c->rcv));
        c->snd_missing = 0;
        c->snd_skip = 0;
    }
    /* out-of-order bytes are never delivered once closed */
    reasm_init(&c->reasm, c->reasm.limit >= 1 ? c->reasm.limit : 1);
}

static void enter_time_wait(struct tcp_conn *c, uint64_t now)
{
    c->state = TCP_TIME_WAIT;
    c->t_rtx = c->t_persist = c->t_keepalive = c->t_tlp = TCP_NO_DEADLINE;
    c->t_rxt_lost = TCP_NO_DEADLINE;
    c->t_timewait = after(now, c->cfg.time_wait_ms);
}

static void ack_now(struct tcp_conn *c)
{
    c->pending |= TCP_PEND_ACK;
}

/* tcp_resync's question to the peer: a keepalive's segment (SEG.SEQ =
 * SND.UNA-1, RFC 9293 3.8.4). The peer has everything before the replica's
 * SND.UNA, so that is always below its RCV.NXT: unacceptable, answered with
 * an ACK. A plain ACK at SND.NXT is not answered when the peer lacks bytes
 * the dead holder sent after the replica (it lands in the window, ahead of
 * RCV.NXT, and carries nothing to acknowledge). */
static void resync_probe(struct tcp_conn *c)
{
    c->pending |= TCP_PEND_KA;
}

/* RFC 5961 7: "An implementation SHOULD include an ACK throttling
 * mechanism"; here at most challenge_ack_limit per second per connection. */
static int challenge_ack(struct tcp_conn *c, uint64_t now, int result)
{
    if (c->chack_count == 0 || now < c->chack_window_ms ||
        now - c->chack_window_ms >= 1000) { /* a window opens at a challenge */
        c->chack_window_ms = now;
        c->chack_count = 0;
    }
    if (c->chack_count >= c->cfg.challenge_ack_limit)
        return TCP_IN_CHALLENGE_LIMITED;
    c->chack_count++;
    ack_now(c);
    return result;
}

/* RFC 6298 (2.2), (2.3); R in milliseconds, G = 1 ms. */
static void rtt_sample(struct tcp_conn *c, uint32_t r)
{
    uint64_t rto;

    if (r > TCP_RTT_LIMIT_MS)
        r = TCP_RTT_LIMIT_MS;
    if (r < 1)
        r = 1;
    if (c->srtt_ms == 0) {
        c->srtt_ms = r;
        c->rttvar_ms = r / 2;
    } else {
        uint32_t delta = c->srtt_ms > r ? c->srtt_ms - r : r - c->srtt_ms;
        /* RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4;
         * SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8 (rounded) */
        c->rttvar_ms = (uint32_t)(((uint64_t)3 * c->rttvar_ms + delta + 2) / 4);
        c->srtt_ms = (uint32_t)(((uint64_t)7 * c->srtt_ms + r + 4) / 8);
        if (c->srtt_ms < 1)
            c->srtt_ms = 1;
    }
    /* RTO <- SRTT + max (G, K*RTTVAR), K = 4; (2.4) and (2.5) bounds */
    rto = (uint64_t)c->srtt_ms + max32(1, 4 * c->rttvar_ms);
    if (rto < c->cfg.rto_min_ms)
        rto = c->cfg.rto_min_ms;
    if (rto > c->cfg.rto_max_ms)
        rto = c->cfg.rto_max_ms;
    c->rto_ms = (uint32_t)rto;
}

/* Both SYNs are acknowledged: the connection is synchronized. */
static void established(struct tcp_conn *c, uint64_t now)
{
    c->state = TCP_ESTABLISHED;
    c->backoff = 0;
    c->t_rtx = TCP_NO_DEADLINE;
    /* RFC 6298 (5.7): after a retransmitted SYN and no measurement, "the
     * RTO MUST be re-initialized to 3 seconds when data transmission
     * begins" */
    if ((c->flags & TCP_CF_SYN_REXMIT) && c->srtt_ms == 0) {
        uint32_t rto = max32(3000, c->cfg.rto_min_ms);
        c->rto_ms = min32(rto, c->cfg.rto_max_ms);
    }
    tcp_cc_init(c);
    if (fin_queued(c))
        c->state = TCP_FIN_WAIT_1; /* 3.10.4 CLOSE in SYN-RECEIVED */
    arm_keepalive(c, now);
}

/* ---- sender SACK scoreboard (RFC 2018) ---------------------------------- */

static void sack_remove(struct tcp_conn *c, uint32_t at)
{
    uint32_t i;

    for (i = at; i + 1 < c->sack_count; i++)
        c->sack[i] = c->sack[i + 1];
    c->sack_count--;
}

/* Records [l, r) (offsets from SND.UNA, 0 < l < r) merged with the blocks it
 * touches; when all TCP_SACK_MAX blocks are used, the highest is forgotten. */
static void sack_insert(struct tcp_conn *c, uint32_t l, uint32_t r)
{
    uint32_t i, first, last, n = c->sack_count;

    for (first = 0; first < n; first++)
        if (c->sack[first].end - c->snd_una >= l)
            break;
    for (last = first; last < n; last++)
        if (c->sack[last].start - c->snd_una > r)
            break;
    if (last > first) {
        uint32_t lo = min32(c->sack[first].start - c->snd_una, l);
        uint32_t hi = max32(c->sack[last - 1].end - c->snd_una, r);
        c->sack[first].start = c->snd_una + lo;
        c->sack[first].end = c->snd_una + hi;
        for (i = last - 1; i > first; i--)
            sack_remove(c, i);
        return;
    }
    if (n == TCP_SACK_MAX) {
        if (first == n)
            return;
        c->sack_count = (uint8_t)(--n);
    }
    for (i = n; i > first; i--)
        c->sack[i] = c->sack[i - 1];
    c->sack[first].start = c->snd_una + l;
    c->sack[first].end = c->snd_una + r;
    c->sack_count = (uint8_t)(n + 1);
}

/* Whether the peer reports (RFC 2018) holding bytes past SND.MAX, which this
 * instance never sent: after tcp_resync, the dead holder's beyond a hole the
 * peer waits for. TCP_CF_RESYNCED stays while it does: filling the hole, the
 * peer's acknowledgement jumps past SND.MAX, and refused (RFC 5961 5.2) with
 * the window full, the stream never moved again (a chaos run's stall). */
static bool sacked_past_snd_max(const struct tcp_conn *c, const struct seg *s)
{
    uint32_t k;

    for (k = 0; k < s->nsack; k++)
        if (seq_gt(s->sack[k][1], c->snd_max))
            return true;
    return false;
}

static void sack_update(struct tcp_conn *c, const struct seg *s)
{
    uint32_t k, outstanding = c->snd_max - c->snd_una;

    for (k = 0; k < s->nsack; k++) {
        uint32_t l = s->sack[k][0] - c->snd_una, r = s->sack[k][1] - c->snd_una;
        /* only blocks inside (SND.UNA, SND.MAX]; others are stale or D-SACK */
        if (l == 0 || l >= r || r > outstanding)
            continue;
        sack_insert(c, l, r);
    }
}

/* After SND.UNA advanced: a block at or below it is gone (a block it cuts
 * through means the receiver reneged, RFC 2018 8, and is forgotten). */
static void sack_trim(struct tcp_conn *c)
{
    while (c->sack_count > 0 && !seq_gt(c->sack[0].start, c->snd_una))
        sack_remove(c, 0);
}

/* Bytes retransmitted during this recovery that are still above SND.UNA:
 * [SND.UNA, snd_rxt) less what the peer has SACKed there. */
static uint32_t hole_rxt_bytes(const struct tcp_conn *c)
{
    uint32_t limit = c->snd_rxt - c->snd_una, bytes, i;

    if (!(c->flags & TCP_CF_IN_RECOVERY) || !seq_gt(c->snd_rxt, c->snd_una) ||
        limit > c->snd_max - c->snd_una)
        return 0;
    bytes = limit;
    for (i = 0; i < c->sack_count; i++) {
        uint32_t l = c->sack[i].start - c->snd_una, r = c->sack[i].end - c->snd_una;
        if (l >= limit)
            break;
        bytes -= min32(r, limit) - l;
    }
    return bytes;
}

/* Bytes above SND.UNA the peer has SACKed. */
static uint32_t sacked_bytes(const struct tcp_conn *c)
{
    uint32_t bytes = 0, i;

    for (i = 0; i < c->sack_count; i++)
        bytes += c->sack[i].end - c->sack[i].start;
    return bytes;
}

/* RFC 6675 4, IsLost(SND.UNA): more than (DupThresh - 1) * SMSS bytes above
 * it SACKed.  A Linux receiver compresses SACKs (one ACK for several
 * out-of-order segments), so three segments may arrive above a hole with
 * fewer than three duplicate ACKs; counting ACKs alone delays the fast
 * retransmission by a round trip or more, often past the RTO. */
static bool sack_says_lost(const struct tcp_conn *c)
{
    return (c->flags & TCP_CF_SACK_OK) && sacked_bytes(c) > 2 * tcp_smss(c);
}

/* How much may be in flight, counted as output_data does (SND.NXT - SND.UNA
 * plus the holes retransmitted in this recovery).  In fast recovery with
 * SACK, at least ssthresh plus the bytes SACKed and the holes retransmitted:
 * that is RFC 6675 5's rule, pipe below cwnd = ssthresh, with pipe = bytes
 * outstanding less those SACKed, each hole counted once (as the original
 * until it is retransmitted, then as the retransmission), written in the
 * inflated-window terms of RFC 6582.  Inflating by one SMSS per duplicate
 * ACK (RFC 6582 3.2 step 4) alone undercounts what has left the network when
 * the receiver compresses SACKs: no new data went out during recovery, the
 * full ACK found nothing in flight, and recovery ended with cwnd at 2*SMSS
 * instead of ssthresh. */
static uint64_t send_window(const struct tcp_conn *c)
{
    uint64_t w = c->cwnd;

    if ((c->flags & TCP_CF_IN_RECOVERY) && (c->flags & TCP_CF_SACK_OK)) {
        uint64_t sack_w = (uint64_t)c->ssthresh + sacked_bytes(c) +
                          hole_rxt_bytes(c);
        if (sack_w > w)
            w = sack_w;
    }
    return w;
}

/* The next un-SACKed range at or after snd_rxt that lies below a SACKed
 * block; false if none. */
static bool next_hole(const struct tcp_conn *c, uint32_t *start, uint32_t *len)
{
    uint32_t pos = 0, i;

    if (seq_gt(c->snd_rxt, c->snd_una))
        pos = c->snd_rxt - c->snd_una;
    for (i = 0; i < c->sack_count; i++) {
        uint32_t l = c->sack[i].start - c->snd_una, r = c->sack[i].end - c->snd_una;
        if (pos < l) {
            *start = pos;
            *len = l - pos;
            return true;
        }
        if (pos < r)
            pos = r;
    }
    return false;
}

/* ---- input ----------------------------------------------------------------- */

static bool paws_valid(const struct tcp_conn *c, uint64_t now)
{
    /* RFC 7323 5.5: TS.Recent older than 24 days is no longer trusted */
    return now < c->ts_recent_ms || now - c->ts_recent_ms < PAWS_IDLE_MS;
}

/* RFC 9293 3.10.7.3 SYN-SENT. */
static int input_syn_sent(struct tcp_conn *c, uint64_t now, const struct seg *s)
{
    bool has_ack = (s->flags & TH_ACK) != 0;

    if (has_ack && !seq_between(c->iss + 1, s->ack, c->snd_nxt + 1)) {
        /* "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the
         * RST bit is set, if so drop the segment and return)
         * <SEQ=SEG.ACK><CTL=RST>" */
        if (s->flags & TH_RST)
            return TCP_IN_DROPPED;
        queue_rst(c, s->ack, 0, TH_RST);
        return TCP_IN_BAD_ACK;
    }
    if (s->flags & TH_RST) {
        /* "If the ACK was acceptable, then signal to the user 'error:
         * connection reset', drop the segment, enter CLOSED state" */
        if (!has_ack)
            return TCP_IN_DROPPED;
        close_conn(c, TCP_CLOSE_REFUSED);
        return TCP_IN_RESET;
    }
    if (!(s->flags & TH_SYN))
        return TCP_IN_DROPPED;
    c->irs = s->seq;
    c->rcv_nxt = s->seq + 1;
    c->rcv_adv = c->rcv_nxt;
    c->last_ack_sent = c->rcv_nxt;
    negotiate(c, now, s);
    if (has_ack) {
        c->snd_una = s->ack; /* ISS + 1: the SYN is acknowledged */
        if (seq_lt(c->snd_nxt, c->snd_una))
            c->snd_nxt = c->snd_una;
        c->snd_wnd = c->max_snd_wnd = s->wnd; /* SYN: not scaled */
        c->snd_wl1 = s->seq;
        c->snd_wl2 = s->ack;
        if ((c->flags & TCP_CF_TS_OK) && s->tsecr != 0)
            rtt_sample(c, tcp_ts_now(c, now) - s->tsecr);
        else if ((c->flags & TCP_CF_RTT_TIMING) && !(c->flags & TCP_CF_SYN_REXMIT))
            rtt_sample(c, (uint32_t)min32((uint32_t)(now - c->rtt_start_ms),
                                          TCP_RTT_LIMIT_MS));
        c->flags &= (uint16_t)~TCP_CF_RTT_TIMING;
        c->pending &= (uint8_t)~TCP_PEND_SYN;
        established(c, now);
        ack_now(c); /* "<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>" */
        update_timers(c, now);
        return TCP_IN_OK;
    }
    /* Simultaneous open: "Otherwise, enter SYN-RECEIVED, form a SYN,ACK
     * segment <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it." */
    c->snd_wnd = c->max_snd_wnd = s->wnd;
    c->snd_wl1 = s->seq;
    c->state = TCP_SYN_RECEIVED;
    c->pending |= TCP_PEND_SYN;
    return TCP_IN_OK;
}

/* Repairing a loss: fast recovery (TCP_CF_IN_RECOVERY), or a retransmission
 * timeout's go-back-N until SND.UNA passes what was sent before it (RFC 6582
 * 4.1's recover, set at the timeout). */
static bool in_loss_recovery(const struct tcp_conn *c)
{
    return (c->flags & TCP_CF_IN_RECOVERY) || seq_leq(c->snd_una, c->recover);
}

/* RFC 8985 6.2 for the retransmission of the hole at SND.UNA, in fast recovery
 * or a timeout's: lost too when the peer has SACKed data sent after it and a
 * reordering window (SRTT/4, as RACK.reo_wnd's min_RTT/4) past its round trip
 * has gone by.  Sent again then, at the ACK that finds it or at the timer
 * (t_rxt_lost) armed for that moment when the SACK came earlier: without
 * this, a lost retransmission waits for the RTO, backed off (chaos seed 534:
 * the hole's copies lost twice, 17 s of silence; seed 711: a timeout's
 * go-back-N copy of a lost probe, 11 s, the peer's SACKs of the data after it
 * all in the first round trip). */
static void lost_retransmission(struct tcp_conn *c, uint64_t now)
{
    uint32_t wait;

    if (!(c->flags & TCP_CF_RXT_WATCH))
        return;
    if (!in_loss_recovery(c) || seq_geq(c->snd_una, c->rxt_una_end)) {
        c->flags &= (uint16_t)~TCP_CF_RXT_WATCH; /* it arrived, or recovery ended */
        c->t_rxt_lost = TCP_NO_DEADLINE;
        return;
    }
    if (c->srtt_ms == 0 || c->sack_count == 0 ||
        !seq_gt(c->sack[c->sack_count - 1].end, c->rxt_una_max))
        return;
    wait = c->srtt_ms + c->srtt_ms / 4;
    if (now - c->rxt_una_ms < wait) {
        c->t_rxt_lost = after(c->rxt_una_ms, wait);
        return;
    }
    c->flags &= (uint16_t)~TCP_CF_RXT_WATCH; /* watched again as it goes */
    c->t_rxt_lost = TCP_NO_DEADLINE;
    c->snd_rxt = c->snd_una;
    c->pending |= TCP_PEND_RXT;
}

/* RFC 8985 7.4 with RACK's inference (6.2): the peer SACKed the probe or
 * data above it, so every un-SACKed byte sent before it is lost (sent a PTO,
 * two round trips or more, before a segment that has been delivered: far
 * beyond RACK's reordering window).  Fast recovery repairs them. */
static bool tlp_says_lost(const struct tcp_conn *c)
{
    return (c->flags & TCP_CF_TLP) && c->sack_count > 0 &&
           seq_gt(c->sack[c->sack_count - 1].end, c->tlp_start) &&
           seq_lt(c->snd_una, c->tlp_start);
}

/* RFC 2883 4: a D-SACK block (the first block, below the cumulative ACK or
 * inside the second block) that reports the probe's first byte again. */
static bool tlp_dsacked(const struct tcp_conn *c, const struct seg *s)
{
    uint32_t l, r;

    if (s->nsack == 0)
        return false;
    l = s->sack[0][0];
    r = s->sack[0][1];
    if (!(seq_leq(r, s->ack) ||
          (s->nsack > 1 && seq_geq(l, s->sack[1][0]) && seq_leq(r, s->sack[1][1]))))
        return false;
    return seq_leq(l, c->tlp_start) && seq_gt(r, c->tlp_start);
}

/* RFC 8985 7.4, the end of a probe's episode at an ACK at or above
 * TLP.end_seq.  A probe of new data asks for nothing more (a loss below it
 * shows as a hole).  A probe that sent data again: the peer had the original
 * too if it reports the probe as a duplicate, by a D-SACK (7.4.1) or, from a
 * receiver without D-SACK, by a pure duplicate ACK at TLP.end_seq (RFC 9293
 * 3.10.7.4's answer to an old segment); an ACK above TLP.end_seq without
 * either means the probe repaired a loss, and "the sender MUST invoke
 * congestion control" (7.4.2).  The ACK at TLP.end_seq that moves SND.UNA
 * there (the original's, or the probe's) decides nothing yet.  As Linux's
 * tcp_process_tlp_ack. */
static void tlp_on_ack(struct tcp_conn *c, const struct seg *s, uint32_t old_una,
                       uint32_t flight, bool sacked_more)
{
    bool rxt = (c->flags & TCP_CF_TLP_RXT) != 0;
    bool pure_dup = s->ack == old_una && s->len == 0 && !sacked_more &&
                    !(s->flags & (TH_SYN | TH_FIN));

    if (!(c->flags & TCP_CF_TLP) || seq_lt(s->ack, c->tlp_end))
        return;
    if (!rxt || tlp_dsacked(c, s) || (s->ack == c->tlp_end && pure_dup)) {
        c->flags &= (uint16_t) ~(TCP_CF_TLP | TCP_CF_TLP_RXT);
    } else if (seq_gt(s->ack, c->tlp_end)) {
        c->flags &= (uint16_t) ~(TCP_CF_TLP | TCP_CF_TLP_RXT);
        tcp_cc_on_tlp_loss(c, flight);
    }
}

/* Fifth step, ACK processing in synchronized states (after the RFC 5961 5.2
 * range check): SND.UNA, the send window, RTT, loss recovery. */
static bool process_ack(struct tcp_conn *c, uint64_t now, const struct seg *s)
{
    bool fin_acked = false;
    uint32_t ack = s->ack;
    uint32_t wnd = (uint32_t)s->wnd << c->snd_wscale;
    uint32_t old_una = c->snd_una;
    uint32_t old_flight = c->snd_max - c->snd_una;
    uint32_t old_sacked = sacked_bytes(c);
    /* RFC 5681 2, DUPLICATE ACKNOWLEDGMENT: (a) outstanding data, (b) no
     * data, (c) SYN and FIN off, (d) SEG.ACK = SND.UNA, (e) same window;
     * and an open window: the answers to zero-window probes (3.8.6.1) are
     * not a sign of loss.  For (e), an ACK that SACKs new data counts even
     * when the window moved (the receiving application read meanwhile): it
     * reports a segment that arrived above a hole, as RFC 6675 counts. */
    bool dup = c->snd_max != c->snd_una && s->len == 0 &&
               !(s->flags & (TH_SYN | TH_FIN)) && ack == c->snd_una && wnd > 0;

    if ((c->flags & TCP_CF_SACK_OK) && s->nsack > 0)
        sack_update(c, s);
    dup = dup && (wnd == c->snd_wnd || sacked_bytes(c) > old_sacked);

    if (seq_gt(ack, c->snd_una)) {
        uint32_t acked = ack - c->snd_una;
        uint32_t ring = (uint32_t)ring_length(&c->snd);
        uint32_t total = ring + c->snd_missing;
        uint32_t data = min32(acked, total);
        uint32_t from_ring = min32(data, ring);

        fin_acked = acked > total; /* SND.MAX <= data end + 1 (the FIN) */
        if (!sacked_past_snd_max(c, s)) /* the peer has what we sent */
            c->flags &= (uint16_t)~TCP_CF_RESYNCED;
        ring_consume(&c->snd, from_ring);
        if (data > from_ring) {
            /* acknowledged bytes the application has not written again yet:
             * it still will, and they are dropped then */
            c->snd_missing -= data - from_ring;
            c->snd_skip += data - from_ring;
        }
        c->snd_off += data;
        c->snd_una = ack;
        if (seq_lt(c->snd_nxt, c->snd_una))
            c->snd_nxt = c->snd_una;
        sack_trim(c);

        /* RTT: RFC 7323 4.1 with timestamps, else the timed segment
         * (Karn's algorithm: timing is cancelled on retransmission). */
        if ((c->flags & TCP_CF_TS_OK) && s->has_ts && s->tsecr != 0) {
            uint32_t r = tcp_ts_now(c, now) - s->tsecr;
            if (r < 0x80000000u)
                rtt_sample(c, r);
        } else if ((c->flags & TCP_CF_RTT_TIMING) && seq_gt(ack, c->rtt_seq)) {
            uint64_t r = now - c->rtt_start_ms;
            rtt_sample(c, (uint32_t)(r < TCP_RTT_LIMIT_MS ? r : TCP_RTT_LIMIT_MS));
            c->flags &= (uint16_t)~TCP_CF_RTT_TIMING;
        }
        c->backoff = 0;
        c->t_tlp = TCP_NO_DEADLINE; /* RFC 8985 7.2: restarted (update_timers) */

        if (c->flags & TCP_CF_IN_RECOVERY) {
            if (seq_gt(ack, c->recover)) {
                /* RFC 6582 3.2 step 5, full acknowledgment */
                c->flags &= (uint16_t) ~(TCP_CF_IN_RECOVERY | TCP_CF_PARTIAL_SEEN |
                                         TCP_CF_RXT_WATCH);
                c->t_rxt_lost = TCP_NO_DEADLINE;
                c->dupacks = 0;
                tcp_cc_on_exit_recovery(c, c->snd_max - c->snd_una);
                c->t_rtx = TCP_NO_DEADLINE; /* (5.3) restart below */
            } else {
                /* partial acknowledgment: "retransmit the first unacknowledged
                 * segment ... For the first partial ACK that arrives during
                 * fast recovery, also reset the retransmit timer." */
                tcp_cc_on_partial_ack(c, acked);
                /* ... unless this recovery has already sent it again (the
                 * SACK holes go before, see output_data) */
                if (!seq_gt(c->snd_rxt, c->snd_una)) {
                    c->pending |= TCP_PEND_RXT;
                    c->snd_rxt = c->snd_una;
                }
                if (!(c->flags & TCP_CF_PARTIAL_SEEN)) {
                    c->flags |= TCP_CF_PARTIAL_SEEN;
                    c->t_rtx = TCP_NO_DEADLINE;
                }
            }
        } else {
            c->dupacks = 0;
            tcp_cc_on_ack(c, acked);
            c->t_rtx = TCP_NO_DEADLINE; /* RFC 6298 (5.3): restart */
        }
        /* Keep recover within 2^31 of SND.UNA: any value below SND.UNA
         * behaves the same for every later ACK. */
        if (!(c->flags & TCP_CF_IN_RECOVERY) && seq_lt(c->recover, c->snd_una))
            c->recover = c->snd_una - 1;
    } else if (dup) {
        if (c->dupacks < 255)
            c->dupacks++;
        if (c->flags & TCP_CF_IN_RECOVERY) {
            tcp_cc_on_recovery_dupack(c); /* RFC 6582 3.2 step 4 */
        } else if ((c->dupacks == 3 || sack_says_lost(c) || tlp_says_lost(c)) &&
                   seq_gt(ack, c->recover)) {
            /* RFC 6582 3.2 steps 2-3: "If the Cumulative Acknowledgment field
             * covers more than recover", enter fast retransmit: "record the
             * highest sequence number transmitted in the variable recover" */
            c->recover = c->snd_max - 1;
            c->flags |= TCP_CF_IN_RECOVERY;
            /* a probe's episode ends in the recovery it started (RFC 8985
             * 7.4: its congestion response is this one) */
            c->flags &= (uint16_t) ~(TCP_CF_PARTIAL_SEEN | TCP_CF_TLP | TCP_CF_TLP_RXT);
            tcp_cc_on_enter_recovery(c);
            c->snd_rxt = c->snd_una;
            c->pending |= TCP_PEND_RXT;
            /* The timer restarts with the fast retransmission (RFC 6298
             * (5.1) arms it again when it goes out), as Linux does: left
             * running from the last new ACK, it expires before the
             * retransmission can be acknowledged whenever the duplicate
             * ACKs took longer than RTO - RTT to come, and the spurious
             * timeout drops cwnd to one segment. */
            c->t_rtx = TCP_NO_DEADLINE;
        }
    }

    /* 3.10.7.4 fifth step: "If SND.UNA =< SEG.ACK =< SND.NXT, the send
     * window should be updated.  If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ
     * and SND.WL2 =< SEG.ACK)), set SND.WND <- SEG.WND, set SND.WL1 <-
     * SEG.SEQ, and set SND.WL2 <- SEG.ACK." */
    if (seq_geq(ack, old_una) &&
        (seq_lt(c->snd_wl1, s->seq) ||
         (c->snd_wl1 == s->seq && seq_leq(c->snd_wl2, ack)))) {
        if (wnd > 0 && c->snd_wnd == 0)
            c->backoff = 0; /* the window opened: persist backoff over */
        c->snd_wnd = wnd;
        c->snd_wl1 = s->seq;
        c->snd_wl2 = ack;
        if (wnd > c->max_snd_wnd)
            c->max_snd_wnd = wnd;
    }
    lost_retransmission(c, now);
    tlp_on_ack(c, s, old_una, old_flight, sacked_bytes(c) > old_sacked);
    return fin_acked;
}

/* Seventh step: segment text, in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2. */
static void receive_text(struct tcp_conn *c, uint64_t now, const struct seg *s)
{
    const uint8_t *p = s->data;
    uint32_t n = s->len, seq = s->seq, offset;
    bool had_gaps = c->reasm.count > 0;
    struct tcp_rx_result res;

    if (seq_lt(seq, c->rcv_nxt)) {
        uint32_t skip = c->rcv_nxt - seq;
        if (skip >= n) {
            ack_now(c); /* a duplicate: tell the sender where we are */
            return;
        }
        p += skip;
        n -= skip;
        seq = c->rcv_nxt;
    }
    offset = seq - c->rcv_nxt;
    res = ring_receive(&c->rcv, &c->reasm, offset, p, n);
    if (res.readable > 0) {
        c->rcv_nxt += res.readable;
        c->rcv_off += res.readable;
        c->sack_recent = c->sack_recent >= res.readable
                             ? c->sack_recent - res.readable
                             : 0;
    }
    if (res.stored < n) {
        ack_now(c); /* beyond our buffer: announce the window */
    } else if (offset > 0) {
        /* RFC 5681 4.2: "A TCP receiver SHOULD send an immediate duplicate
         * ACK when an out-of-order segment arrives" */
        c->sack_recent = offset;
        ack_now(c);
    } else if (had_gaps) {
        ack_now(c); /* "... when the incoming segment fills in all or part of
                       a gap in the sequence space" */
    } else {
        /* RFC 5681 4.2: ACK at least every second full-sized segment, and
         * within delack_ms (3.8.6.3) */
        if (c->unacked_segs < 255)
            c->unacked_segs++;
        if (c->rcv_nxt - c->last_ack_sent >= 2 * rcv_smss(c) ||
            c->cfg.delack_ms == 0)
            ack_now(c);
        else if (c->t_delack == TCP_NO_DEADLINE)
            c->t_delack = after(now, c->cfg.delack_ms);
    }
}

/* tcp_resync: how long the peer's bytes at RCV.NXT are waited for (see
 * rcv_resync_to in tcp_conn.h): a retransmission timeout from now, and
 * tcp_resync's wait_ms (by default twice the replica's age: the peer sent them
 * to the dead holder and has retransmitted them, unanswered, since; its timer
 * doubled each time, RFC 6298 5.5, so its next try comes at most about as long
 * after the first as the time that passed). Duplicate ACKs do not hurry a peer
 * that uses SACK (Linux counts only SACKed segments then). */
static uint64_t rcv_resync_deadline(const struct tcp_conn *c, uint64_t now)
{
    return after(now, (uint64_t)max32(c->rto_ms, c->cfg.rto_min_ms) + c->rcv_resync_wait_ms);
}

/* tcp_resync: the peer's ACK sets where both sides stand (see tcp_conn.h).
 * False when it lies out of bounds: the connection is reset. */
static bool resync(struct tcp_conn *c, uint64_t now, const struct seg *s)
{
    uint32_t acked = s->ack - c->snd_una; /* beyond the replica's SND.UNA */
    uint32_t sent = s->seq - c->rcv_nxt;  /* beyond the replica's RCV.NXT */
    uint32_t ours;

    if (seq_lt(s->seq, c->rcv_nxt) && c->rcv_nxt - s->seq <= TCP_RESYNC_LIMIT)
        /* the peer stands behind the replica: the holder kept back its
         * acknowledgement until a replica covered what came (a replicating
         * program's hold), and the peer sends again what this one has */
        sent = 0;
    if (acked > TCP_RESYNC_LIMIT || sent > TCP_RESYNC_LIMIT) {
        /* RFC 9293 3.10.7.4 (an unacceptable ACK): <SEQ=SEG.ACK><CTL=RST>,
         * the peer's RCV.NXT, which RFC 5961 3.2 has it take exactly; the
         * replica's SND.NXT lies behind what the peer holds, and a RST
         * there is dropped: the peer waited, never reset */
        close_conn(c, TCP_CLOSE_RESYNC);
        queue_rst(c, s->ack, 0, TH_RST);
        return false;
    }
    if ((c->flags & TCP_CF_RESYNC) && c->snd_missing == 0 &&
        ring_length(&c->snd) > 0) {
        /* the first answer to a full replica (the application writes
         * nothing while a resync is under way, so the ring is the
         * replica's: its bytes from the replica's SND.UNA on): what the
         * peer holds leaves the ring, the rest is sent again. The peer
         * cannot stand beyond the ring unless the holder sent bytes no
         * replica covered: they are lost, and so is the stream. A FIN
         * of the holder's that the peer acknowledges (tcp_resync took it
         * off) is ours to send again once the application closes: the
         * peer answers a repeated FIN */
        uint32_t ring = (uint32_t)ring_length(&c->snd);

        if (acked == ring + 1)
            acked = ring;
        if (acked > ring) {
            close_conn(c, TCP_CLOSE_RESYNC);
            queue_rst(c, s->ack, 0, TH_RST); /* at the peer's RCV.NXT, as above */
            return false;
        }
        ring_consume(&c->snd, acked);
    } else if (c->flags & TCP_CF_RESYNC) {
        /* the first answer: the send stream restarts at the peer's
         * acknowledgement, which the application writes again from */
        ring_consume(&c->snd, ring_length(&c->snd));
        c->snd_missing = 0;
        c->snd_skip = 0;
    } else {
        /* a later one (TCP_CF_RESYNCED): the application has written on
         * from the first, and may have closed. The bytes the peer already
         * holds leave the ring; those it has not written yet are skipped
         * when it does, so its stream offset stays where it is (dropping
         * the ring instead lost the rest of a response whose writer had
         * finished: our FIN went out where the peer stood). A FIN of the
         * dead holder's that the peer acknowledges is ours to send again:
         * the peer answers a repeated FIN. */
        uint32_t ring = (uint32_t)ring_length(&c->snd);
        uint32_t from_ring = min32(acked, ring);

        if ((c->flags & TCP_CF_FIN_QUEUED) && acked > ring)
            acked = ring;
        ring_consume(&c->snd, from_ring);
        c->snd_skip += acked - from_ring;
    }
    c->snd_off += acked;
    c->snd_una = c->snd_nxt = c->snd_max = c->snd_una + acked;
    c->snd_wl1 = s->seq - 1; /* the window in this segment is taken */
    c->snd_wl2 = c->snd_una;
    c->recover = c->snd_una - 1;
    c->sack_count = 0;
    c->dupacks = 0;
    c->flags &= (uint16_t) ~(TCP_CF_IN_RECOVERY | TCP_CF_PARTIAL_SEEN |
                             TCP_CF_RTT_TIMING | TCP_CF_TLP | TCP_CF_TLP_RXT |
                             TCP_CF_RXT_WATCH);
    c->t_tlp = c->t_rxt_lost = TCP_NO_DEADLINE;
    if (sent > 0 && ((c->flags & TCP_CF_RESYNC) || c->t_rcv_resync != TCP_NO_DEADLINE)) {
        /* The peer has sent up to SEG.SEQ, and which of it the dead holder
         * acknowledged is unknown: the unacknowledged rest the peer sends
         * again from where the holder's acknowledgements stopped, which is
         * RCV.NXT here if they stopped at the replica (a request that came
         * just before the holder died, and that skipping would lose). Four
         * duplicate ACKs at RCV.NXT have the peer send it at once: RFC 5681
         * 3.2 counts those that carry no data, acknowledge SND.UNA and leave
         * the window as it was (the probe's answer was not one: a probe lies
         * below the peer's RCV.NXT, which it answers and drops), and the
         * first may change the window the peer holds (the holder's last
         * one), so three follow it. With two, a peer without a tail loss
         * probe (ours, BSD's) waited for its retransmission timer, backed
         * off while it sent to the dead holder: a chaos run's request came
         * again 10 s later. What the holder had
         * acknowledged never comes again, so RCV.NXT goes to SEG.SEQ when a
         * retransmission timeout passes without it. */
        if (c->t_rcv_resync == TCP_NO_DEADLINE || seq_gt(s->seq, c->rcv_resync_to))
            c->rcv_resync_to = s->seq;
        if (c->t_rcv_resync == TCP_NO_DEADLINE) {
            c->t_rcv_resync = rcv_resync_deadline(c, now);
            c->dupacks_owed = 4;
        }
        sent = 0;
    }
    /* the receive stream goes on from the peer's sequence number: what the
     * replica's holder received meanwhile is lost to this instance */
    c->rcv_nxt += sent;
    c->rcv_off += sent;
    c->resync_gap += sent;
    if (seq_lt(c->rcv_adv, c->rcv_nxt))
        c->rcv_adv = c->rcv_nxt;
    if (sent > 0)
        reasm_init(&c->reasm, c->reasm.limit); /* held above the old RCV.NXT */
    if ((c->flags & TCP_CF_TS_OK) && s->has_ts) {
        /* RFC 7323 5.3: the peer's clock as it is now, and ours at least at
         * what the replica's holder sent last (its TSecr), or the peer's
         * PAWS would drop everything this instance sends */
        c->ts_recent = s->tsval;
        c->ts_recent_ms = now;
        ours = tcp_ts_now(c, now);
        if (seq_gt(s->tsecr, ours))
            c->ts_offset += s->tsecr - ours;
    }
    c->flags &= (uint16_t)~TCP_CF_RESYNC;
    c->flags |= TCP_CF_RESYNCED;
    c->backoff = 0;
    c->t_rtx = TCP_NO_DEADLINE;
    return true;
}

/* tcp_resync's wait for the peer's bytes at RCV.NXT is over (see
 * rcv_resync_to in tcp_conn.h): what has not come the dead holder had
 * acknowledged, and RCV.NXT goes past it. */
static void rcv_resync_done(struct tcp_conn *c)
{
    uint32_t gap;

    c->t_rcv_resync = TCP_NO_DEADLINE;
    if (!seq_gt(c->rcv_resync_to, c->rcv_nxt))
        return;
    gap = c->rcv_resync_to - c->rcv_nxt;
    c->rcv_nxt += gap;
    c->rcv_off += gap;
    c->resync_gap += gap;
    if (seq_lt(c->rcv_adv, c->rcv_nxt))
        c->rcv_adv = c->rcv_nxt;
    reasm_init(&c->reasm, c->reasm.limit); /* held above the old RCV.NXT */
    ack_now(c);
}

/* RFC 9293 3.10.7.4: SYN-RECEIVED and the synchronized states. */
static int input_synchronized(struct tcp_conn *c, uint64_t now, struct seg *s)
{
    bool ts_ok = (c->flags & TCP_CF_TS_OK) != 0;
    bool fin_acked = false;
    uint32_t rwnd;

    /* RFC 7323 3.2: "If a non-RST segment is received without a TSopt, a
     * TCP SHOULD silently drop the segment." */
    if (ts_ok && !s->has_ts && !(s->flags & TH_RST))
        return TCP_IN_DROPPED;
    /* RFC 7323 5.3 R1: "If SEG.TSval < TS.Recent ... treat the arriving
     * segment as not acceptable: Send an acknowledgment in reply ... and
     * drop the segment." */
    if (ts_ok && s->has_ts && !(s->flags & TH_RST) &&
        seq_lt(s->tsval, c->ts_recent) && paws_valid(c, now)) {
        ack_now(c);
        return TCP_IN_PAWS;
    }

    if ((c->flags & TCP_CF_RESYNC) && (s->flags & TH_ACK) &&
        !(s->flags & (TH_RST | TH_SYN)) && !resync(c, now, s))
        return TCP_IN_RESYNC_REFUSED;

    /* Simultaneous open (RFC 9293 3.5 figure 7): in SYN-RECEIVED the peer's
     * SYN-ACK repeats its SYN at IRS; with an acceptable ACK it completes
     * the handshake (as Linux lets it through before the RFC 5961 SYN
     * check).  Any text or FIN on it is not taken. */
    if (c->state == TCP_SYN_RECEIVED && (s->flags & TH_SYN) &&
        (s->flags & TH_ACK) && !(s->flags & TH_RST) && s->seq == c->irs &&
        seq_between(c->snd_una + 1, s->ack, c->snd_max + 1)) {
        s->flags &= (uint8_t) ~(TH_SYN | TH_FIN);
        s->seq = c->rcv_nxt;
        s->len = 0;
        s->seg_len = 0;
    }

    /* first: sequence number */
    rwnd = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    if (rwnd == 0 && s->seq == c->rcv_nxt && s->seg_len > 0 &&
        !(s->flags & (TH_SYN | TH_RST))) {
        /* "If the RCV.WND is zero, no segments will be acceptable, but
         * special allowance should be made to accept valid ACKs, URGs, and
         * RSTs": the text is dropped, the ACK field still processed. */
        s->len = 0;
        s->seg_len = 0;
        s->flags &= (uint8_t)~TH_FIN;
        ack_now(c);
    }
    if (!seq_segment_acceptable(c->rcv_nxt, rwnd, s->seq, s->seg_len)) {
        /* RFC 5961 3.2: an RST outside the window is silently dropped */
        if (s->flags & TH_RST)
            return TCP_IN_DROPPED;
        /* "If an incoming segment is not acceptable, an acknowledgment
         * should be sent in reply"; in TIME-WAIT a retransmitted FIN also
         * restarts the 2 MSL timeout. */
        if (c->state == TCP_TIME_WAIT && (s->flags & TH_FIN))
            c->t_timewait = after(now, c->cfg.time_wait_ms);
        if (c->state == TCP_SYN_RECEIVED)
            c->pending |= TCP_PEND_SYN; /* our answer is the SYN-ACK */
        else
            ack_now(c);
        return TCP_IN_UNACCEPTABLE;
    }

    /* second: RST.  RFC 5961 3.2: "If the RST bit is set and the sequence
     * number exactly matches the next expected sequence number (RCV.NXT),
     * then TCP MUST reset the connection ... Otherwise (i.e., the sequence
     * number is within the current receive window but not an exact match),
     * TCP MUST send an acknowledgment (challenge ACK)". */
    if (s->flags & TH_RST) {
        if (s->seq != c->rcv_nxt)
            return challenge_ack(c, now, TCP_IN_CHALLENGE);
        if (c->state == TCP_SYN_RECEIVED && !(c->flags & TCP_CF_PASSIVE))
            close_conn(c, TCP_CLOSE_REFUSED);
        else
            close_conn(c, TCP_CLOSE_RESET);
        return TCP_IN_RESET;
    }

    /* fourth: SYN.  RFC 5961 4.2: "If the SYN bit is set, irrespective of
     * the exact sequence number, TCP MUST send an ACK (also referred to as
     * challenge ACK) to the remote peer" (also in SYN-RECEIVED here, rather
     * than returning a passive connection to LISTEN). */
    if (s->flags & TH_SYN)
        return challenge_ack(c, now, TCP_IN_CHALLENGE);

    /* fifth: ACK.  "if the ACK bit is off, drop the segment and return" */
    if (!(s->flags & TH_ACK))
        return TCP_IN_DROPPED;
    if (c->state == TCP_SYN_RECEIVED) {
        /* "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state
         * ... If the segment acknowledgment is not acceptable, form a reset
         * segment <SEQ=SEG.ACK><CTL=RST> and send it." */
        if (!seq_between(c->snd_una + 1, s->ack, c->snd_max + 1)) {
            queue_rst(c, s->ack, 0, TH_RST);
            return TCP_IN_BAD_ACK;
        }
        c->snd_una = s->ack;
        if (seq_lt(c->snd_nxt, c->snd_una))
            c->snd_nxt = c->snd_una;
        c->snd_wnd = (uint32_t)s->wnd << c->snd_wscale;
        if (c->snd_wnd > c->max_snd_wnd)
            c->max_snd_wnd = c->snd_wnd;
        c->snd_wl1 = s->seq;
        c->snd_wl2 = s->ack;
        if (ts_ok && s->tsecr != 0) {
            uint32_t r = tcp_ts_now(c, now) - s->tsecr;
            if (r < 0x80000000u)
                rtt_sample(c, r);
        } else if ((c->flags & TCP_CF_RTT_TIMING) &&
                   !(c->flags & TCP_CF_SYN_REXMIT)) {
            uint64_t r = now - c->rtt_start_ms;
            rtt_sample(c, (uint32_t)(r < TCP_RTT_LIMIT_MS ? r : TCP_RTT_LIMIT_MS));
        }
        c->flags &= (uint16_t)~TCP_CF_RTT_TIMING;
        c->pending &= (uint8_t)~TCP_PEND_SYN;
        established(c, now);
    } else {
        /* RFC 5961 5.2: acceptable if "(SND.UNA - MAX.SND.WND) =< SEG.ACK =<
         * SND.NXT"; otherwise "discard the segment and send an ACK back"
         * (throttled like every challenge ACK). */
        if ((c->flags & TCP_CF_RESYNCED) && seq_gt(s->ack, c->snd_max) &&
            s->ack - c->snd_una <= TCP_RESYNC_LIMIT && seq_geq(s->seq, c->rcv_nxt)) {
            /* tcp_resync took an answer the peer sent the dead holder, which
             * stood behind where the peer is: this later one moves us on
             * (answered with an ACK instead, the peer's dup ACKs and ours went
             * back and forth and the stream never moved) */
            resync(c, now, s);
            return TCP_IN_OK;
        }
        if (!seq_between(c->snd_una - c->max_snd_wnd, s->ack, c->snd_max + 1))
            return challenge_ack(c, now, TCP_IN_BAD_ACK);
        fin_acked = process_ack(c, now, s);
        if (fin_acked) {
            switch (c->state) {
            case TCP_FIN_WAIT_1:
                c->state = TCP_FIN_WAIT_2;
                break;
            case TCP_CLOSING:
                enter_time_wait(c, now);
                break;
            case TCP_LAST_ACK:
                close_conn(c, TCP_CLOSE_NORMAL);
                return TCP_IN_OK;
            default:
                break;
            }
        }
    }

    /* RFC 7323 4.3 / 5.3 R3: "If SEG.TSval >= TS.Recent and SEG.SEQ =<
     * Last.ACK.sent, then SEG.TSval is copied to TS.Recent" -- only now that
     * the segment has passed every check, the RFC 5961 ACK range included:
     * otherwise forged segments refused for their ACK could push TS.Recent
     * ahead of the peer's clock and PAWS would then refuse the peer. */
    if (ts_ok && s->has_ts && seq_geq(s->tsval, c->ts_recent) &&
        seq_leq(s->seq, c->last_ack_sent)) {
        c->ts_recent = s->tsval;
        c->ts_recent_ms = now;
    }

    /* sixth: URG is not supported; urgent data is delivered as normal data
     * (RFC 6093 recommends applications do not use it). */

    /* seventh: segment text */
    if (s->len > 0 &&
        (c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
         c->state == TCP_FIN_WAIT_2)) {
        uint32_t room = seq_gt(c->rcv_adv, s->seq) ? c->rcv_adv - s->seq : 0;
        if (s->len > room) {
            s->len = room; /* beyond the window we advertised */
            s->flags &= (uint8_t)~TH_FIN;
            ack_now(c);
        }
        receive_text(c, now, s);
    }

    /* eighth: FIN, processed only when everything before it has arrived */
    if (s->flags & TH_FIN) {
        if (c->flags & TCP_CF_RCV_FIN) {
            ack_now(c);
            if (c->state == TCP_TIME_WAIT)
                c->t_timewait = after(now, c->cfg.time_wait_ms);
        } else if (s->seq + s->len == c->rcv_nxt) {
            /* Out-of-order bytes beyond the FIN cannot belong to the stream
             * (a peer sends nothing after its FIN): forget them. */
            reasm_init(&c->reasm, c->reasm.limit);
            c->sack_recent = 0;
            c->rcv_nxt++;
            if (seq_lt(c->rcv_adv, c->rcv_nxt))
                c->rcv_adv = c->rcv_nxt;
            c->flags |= TCP_CF_RCV_FIN;
            ack_now(c);
            switch (c->state) {
            case TCP_ESTABLISHED:
                c->state = TCP_CLOSE_WAIT;
                break;
            case TCP_FIN_WAIT_1: /* our FIN not yet acknowledged */
                c->state = TCP_CLOSING;
                break;
            case TCP_FIN_WAIT_2:
                enter_time_wait(c, now);
                break;
            default:
                break;
            }
        }
    }

    if (c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT)
        arm_keepalive(c, now); /* any segment shows the peer is alive */
    else
        c->t_keepalive = TCP_NO_DEADLINE;
    update_timers(c, now);
    return TCP_IN_OK;
}

int tcp_input(struct tcp_conn *c, uint64_t now_ms, const uint8_t *segment,
              size_t len)
{
    struct seg s;
    uint32_t before;
    int r;

    if (c == NULL)
        return TCP_IN_MALFORMED;
    if (frozen(c))
        return TCP_IN_FROZEN; /* silently: nothing read, nothing changed */
    r = parse_segment(c, segment, len, &s);
    if (r != TCP_IN_OK)
        return r;
    switch (c->state) {
    case TCP_CLOSED:
    case TCP_LISTEN:
        return TCP_IN_CLOSED;
    case TCP_SYN_SENT:
        return input_syn_sent(c, now_ms, &s);
    default:
        break;
    }
    before = c->rcv_nxt;
    r = input_synchronized(c, now_ms, &s);
    if (c->t_rcv_resync != TCP_NO_DEADLINE && c->state != TCP_CLOSED) {
        if (!seq_lt(c->rcv_nxt, c->rcv_resync_to))
            c->t_rcv_resync = TCP_NO_DEADLINE; /* the peer's bytes came again */
        else if (c->rcv_nxt != before) /* coming: the wait starts again */
            c->t_rcv_resync = rcv_resync_deadline(c, now_ms);
    }
    return r;
}

/* ---- output ---------------------------------------------------------------- */

/* SACK blocks a non-SYN segment carries now: RFC 2018 3, at most 4, or 3
 * beside timestamps. */
static uint32_t sack_blocks_to_send(const struct tcp_conn *c)
{
    uint32_t max = (c->flags & TCP_CF_TS_OK) ? 3 : 4;

    if (!(c->flags & TCP_CF_SACK_OK))
        return 0;
    return min32(c->reasm.count, max);
}

/* Option bytes of a non-SYN, non-RST segment. */
static uint32_t option_space(const struct tcp_conn *c)
{
    uint32_t n = sack_blocks_to_send(c);

    return ((c->flags & TCP_CF_TS_OK) ? TS_OPTION_SPACE : 0) +
           (n > 0 ? 4 + 8 * n : 0);
}

/* The window field: receiver SWS avoidance (3.8.6.2.2: the right edge moves
 * only by at least min(buffer/2, MSS)), scaled (RFC 7323 2.3), and never
 * moving the advertised right edge left (3.8.6). */
static uint16_t window_field(struct tcp_conn *c)
{
    uint32_t space = (uint32_t)ring_free_space(&c->rcv);
    uint32_t cur = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    uint32_t thresh = min32((uint32_t)ring_capacity(&c->rcv) / 2, c->rcv_mss);
    uint32_t ws = c->rcv_wscale, wnd = cur, field, ceil_cur, edge;

    if (space > cur && space - cur >= thresh)
        wnd = space;
    ceil_cur = (uint32_t)(((uint64_t)cur + (1u << ws) - 1) >> ws);
    field = max32(wnd >> ws, ceil_cur);
    if (field > 65535)
        field = 65535;
    edge = c->rcv_nxt + (field << ws);
    if (seq_gt(edge, c->rcv_adv))
        c->rcv_adv = edge;
    return (uint16_t)field;
}

static uint32_t put_timestamps(uint8_t *o, uint32_t tsval, uint32_t tsecr)
{
    o[0] = OPT_NOP;
    o[1] = OPT_NOP;
    o[2] = OPT_TIMESTAMPS;
    o[3] = 10;
    put32(o + 4, tsval);
    put32(o + 8, tsecr);
    return TS_OPTION_SPACE;
}

/* RFC 2018 4: "The first SACK block ... MUST specify the contiguous block of
 * data containing the segment which triggered this ACK"; then the others. */
static uint32_t put_sack(const struct tcp_conn *c, uint8_t *o, uint32_t n)
{
    uint32_t first = 0, i, k = 1;
    const struct tcp_reasm *a = &c->reasm;

    for (i = 0; i < a->count; i++)
        if (a->iv[i].offset <= c->sack_recent &&
            c->sack_recent - a->iv[i].offset < a->iv[i].length) {
            first = i;
            break;
        }
    o[0] = OPT_NOP;
    o[1] = OPT_NOP;
    o[2] = OPT_SACK;
    o[3] = (uint8_t)(2 + 8 * n);
    put32(o + 4, c->rcv_nxt + a->iv[first].offset);
    put32(o + 8, c->rcv_nxt + a->iv[first].offset + a->iv[first].length);
    for (i = 0; i < a->count && k < n; i++) {
        if (i == first)
            continue;
        put32(o + 4 + 8 * k, c->rcv_nxt + a->iv[i].offset);
        put32(o + 8 + 8 * k, c->rcv_nxt + a->iv[i].offset + a->iv[i].length);
        k++;
    }
    return 4 + 8 * n;
}

/* Writes one segment: header, options, `dlen` bytes of the send ring from
 * `ring_off`, checksum.  The caller made sure they fit in cap. */
static size_t build(struct tcp_conn *c, uint64_t now, uint8_t *out,
                    uint32_t seq, uint8_t th, uint32_t ring_off, uint32_t dlen)
{
    uint8_t *o = out + TCP_HEADER_LEN;
    uint32_t olen = 0, hlen, ack = 0;
    uint16_t win;

    if (th & TH_SYN) {
        bool offer = c->state == TCP_SYN_SENT;
        uint32_t space = (uint32_t)ring_free_space(&c->rcv);
        o[0] = OPT_MSS;
        o[1] = 4;
        put16(o + 2, c->rcv_mss);
        olen = 4;
        if (offer ? c->cfg.window_scaling : (c->flags & TCP_CF_WS_OK) != 0) {
            o[olen] = OPT_NOP;
            o[olen + 1] = OPT_WSCALE;
            o[olen + 2] = 3;
            o[olen + 3] = c->rcv_wscale;
            olen += 4;
        }
        if (offer ? c->cfg.sack : (c->flags & TCP_CF_SACK_OK) != 0) {
            o[olen] = OPT_NOP;
            o[olen + 1] = OPT_NOP;
            o[olen + 2] = OPT_SACK_PERMITTED;
            o[olen + 3] = 2;
            olen += 4;
        }
        if (offer ? c->cfg.timestamps : (c->flags & TCP_CF_TS_OK) != 0)
            olen += put_timestamps(o + olen, tcp_ts_now(c, now),
                                   offer ? 0 : c->ts_recent);
        /* RFC 7323 2.2: "The window field in a segment where the SYN bit is
         * set (i.e., a <SYN> or <SYN,ACK>) MUST NOT be scaled." */
        win = (uint16_t)min32(space, 65535);
        if ((th & TH_ACK) && seq_gt(c->rcv_nxt + win, c->rcv_adv))
            c->rcv_adv = c->rcv_nxt + win;
    } else if (th & TH_RST) {
        win = 0;
    } else {
        uint32_t n = sack_blocks_to_send(c);
        if (c->flags & TCP_CF_TS_OK)
            olen += put_timestamps(o, tcp_ts_now(c, now), c->ts_recent);
        if (n > 0)
            olen += put_sack(c, o + olen, n);
        win = window_field(c);
    }
    if (th & TH_RST)
        ack = c->reply_ack;
    else if (th & TH_ACK)
        ack = c->rcv_nxt;
    hlen = TCP_HEADER_LEN + olen;
    if (dlen > 0)
        dlen = (uint32_t)ring_peek(&c->snd, ring_off, out + hlen, dlen);
    put16(out, c->local_port);
    put16(out + 2, c->remote_port);
    put32(out + 4, seq);
    put32(out + 8, ack);
    out[12] = (uint8_t)((hlen / 4) << 4);
    out[13] = th;
    put16(out + 14, win);
    put16(out + 16, 0);
    put16(out + 18, 0); /* no urgent pointer */
    put16(out + 16, tcp_checksum(c->local_addr, c->remote_addr, out, hlen + dlen));
    if ((th & TH_ACK) && !(th & TH_RST)) {
        c->last_ack_sent = c->rcv_nxt;
        c->pending &= (uint8_t)~TCP_PEND_ACK;
        c->t_delack = TCP_NO_DEADLINE;
        c->unacked_segs = 0;
    }
    return hlen + dlen;
}

/* A data and/or FIN segment starting at seq; bookkeeping of SND.NXT,
 * SND.MAX, RTT timing and timers. */
static size_t send_data(struct tcp_conn *c, uint64_t now, uint8_t *out,
                        uint32_t seq, uint32_t len, bool fin)
{
    uint32_t end = seq + len + (fin ? 1u : 0u);
    bool rexmit = seq_lt(seq, c->snd_max);
    uint8_t th = TH_ACK;
    size_t n;

    if (fin)
        th |= TH_FIN;
    if (len > 0 && seq + len == c->snd_una + (uint32_t)ring_length(&c->snd))
        th |= TH_PSH; /* the segment empties the send queue */
    n = build(c, now, out, seq, th, seq - c->snd_una, len);
    if (!(c->flags & TCP_CF_TS_OK)) {
        if (rexmit) {
            c->flags &= (uint16_t)~TCP_CF_RTT_TIMING; /* Karn */
        } else if (!(c->flags & TCP_CF_RTT_TIMING)) {
            c->flags |= TCP_CF_RTT_TIMING;
            c->rtt_seq = seq;
            c->rtt_start_ms = now;
        }
    }
    if (seq_leq(seq, c->snd_nxt) && seq_gt(end, c->snd_nxt))
        c->snd_nxt = end;
    if (seq_gt(end, c->snd_max)) {
        c->snd_max = end;
        c->t_tlp = TCP_NO_DEADLINE; /* RFC 8985 7.2: new data restarts the PTO */
    }
    update_timers(c, now);
    return n;
}

/* RFC 8985 7.3, the probe when the PTO fired: "If a previously unsent
 * segment exists AND the receive window allows new data to be sent: Send that
 * segment ... Else: Retransmit the last segment", whatever cwnd allows; then
 * the RTO is armed again.  0 when there is nothing it could send (the last
 * segment's bytes are the application's to write again, after an import). */
static size_t send_probe(struct tcp_conn *c, uint64_t now, uint8_t *out, uint32_t maxdata)
{
    uint32_t ring = (uint32_t)ring_length(&c->snd), end = data_end(c);
    uint32_t off = c->snd_nxt - c->snd_una, avail = off < ring ? ring - off : 0;
    uint32_t usable = seq_gt(c->snd_una + c->snd_wnd, c->snd_nxt)
                          ? c->snd_una + c->snd_wnd - c->snd_nxt
                          : 0;
    bool fin_ok = fin_queued(c) && c->snd_missing == 0, fin;
    uint32_t seq, len;
    size_t n;

    if ((avail > 0 && usable > 0) || (fin_ok && c->snd_nxt == end)) {
        seq = c->snd_nxt;
        len = min32(min32(avail, maxdata), usable);
        fin = fin_ok && seq + len == end;
        c->flags = (uint16_t)((c->flags | TCP_CF_TLP) & ~TCP_CF_TLP_RXT);
    } else {
        /* the highest-sequence segment sent: data up to SND.MAX (the FIN's
         * number excluded when it was sent) and the FIN with it */
        fin = fin_ok && c->snd_max == end + 1;
        len = min32((fin ? end : c->snd_max) - c->snd_una, maxdata);
        seq = (fin ? end : c->snd_max) - len;
        if (seq - c->snd_una + len > ring)
            return 0;
        c->flags |= TCP_CF_TLP | TCP_CF_TLP_RXT;
    }
    c->tlp_start = seq;
    n = send_data(c, now, out, seq, len, fin);
    c->tlp_end = c->snd_max; /* TLP.end_seq */
    c->t_rtx = after(now, c->rto_ms);
    return n;
}

/* The hole at SND.UNA goes again in fast recovery or a timeout's go-back-N:
 * watched (lost_retransmission). */
static void watch_rxt(struct tcp_conn *c, uint64_t now, uint32_t len)
{
    if (!in_loss_recovery(c) || !(c->flags & TCP_CF_SACK_OK))
        return;
    c->flags |= TCP_CF_RXT_WATCH;
    c->rxt_una_ms = now;
    c->rxt_una_end = c->snd_una + len;
    c->rxt_una_max = c->snd_max;
    c->t_rxt_lost = TCP_NO_DEADLINE;
}

/* Data, FIN and retransmissions in the states that send them. */
static size_t output_data(struct tcp_conn *c, uint64_t now, uint8_t *out,
                          size_t cap)
{
    uint32_t ring = (uint32_t)ring_length(&c->snd);
    uint32_t end = data_end(c);
    bool fin_ok = fin_queued(c) && c->snd_missing == 0;
    uint32_t opt = option_space(c), maxdata, off, avail, len, flight, room;
    uint64_t hdr = TCP_HEADER_LEN + (uint64_t)opt, allowed, window;
    bool fin;

    maxdata = c->snd_mss > opt ? c->snd_mss - opt : 1;
    if (cap < hdr)
        return 0;
    if (cap - hdr < maxdata)
        maxdata = (uint32_t)(cap - hdr);

    /* RFC 6298 (5.4), RFC 6582 3.2 steps 3 and 5: the earliest segment,
     * whatever cwnd allows (one byte into a zero window). */
    if (c->pending & TCP_PEND_RXT) {
        c->pending &= (uint8_t)~TCP_PEND_RXT;
        if (c->snd_max != c->snd_una) {
            len = min32(ring, maxdata);
            len = min32(len, max32(c->snd_wnd, 1));
            fin = fin_ok && c->snd_una + len == end;
            if ((c->flags & TCP_CF_IN_RECOVERY) &&
                seq_lt(c->snd_rxt, c->snd_una + len))
                c->snd_rxt = c->snd_una + len; /* this hole is done */
            if (len > 0 || fin) {
                watch_rxt(c, now, len);
                return send_data(c, now, out, c->snd_una, len, fin);
            }
        }
    }
    /* 3.8.6.1 zero-window probe: one byte (or whatever the too small window
     * takes), ignoring the window. */
    if (c->pending & TCP_PEND_PROBE) {
        uint32_t seq;
        c->pending &= (uint8_t)~TCP_PEND_PROBE;
        if (c->snd_max != c->snd_una) {
            seq = c->snd_una;
            len = min32(ring, 1);
        } else {
            uint32_t usable = seq_gt(c->snd_una + c->snd_wnd, c->snd_nxt)
                                  ? c->snd_una + c->snd_wnd - c->snd_nxt
                                  : 0;
            seq = c->snd_nxt;
            off = c->snd_nxt - c->snd_una;
            avail = off < ring ? ring - off : 0;
            len = min32(min32(avail, maxdata), max32(usable, 1));
        }
        fin = fin_ok && seq + len == end;
        if (len > 0 || fin)
            return send_data(c, now, out, seq, len, fin);
    }
    if (c->pending & TCP_PEND_TLP) {
        size_t n;
        c->pending &= (uint8_t)~TCP_PEND_TLP;
        if (pto_allowed(c) && (n = send_probe(c, now, out, maxdata)) > 0)
            return n;
    }
    flight = (c->snd_nxt - c->snd_una) + hole_rxt_bytes(c);
    window = send_window(c);
    /* Fast recovery with SACK: the holes below the highest SACKed byte go
     * before new data, within the same window (see the compliance notes). */
    if ((c->flags & TCP_CF_IN_RECOVERY) && (c->flags & TCP_CF_SACK_OK)) {
        uint32_t hs, hl;
        if (next_hole(c, &hs, &hl) && hs < ring) {
            len = min32(min32(hl, maxdata), ring - hs);
            if ((uint64_t)flight + len <= window) {
                c->snd_rxt = c->snd_una + hs + len;
                if (hs == 0)
                    watch_rxt(c, now, len);
                return send_data(c, now, out, c->snd_una + hs, len, false);
            }
        }
    }
    /* New data, or after a timeout the rest again (go-back-N). */
    off = c->snd_nxt - c->snd_una;
    avail = off < ring ? ring - off : 0;
    fin = fin_ok && seq_leq(c->snd_nxt, end);
    if (avail == 0 && !fin)
        return 0;
    room = seq_gt(c->snd_una + c->snd_wnd, c->snd_nxt)
               ? c->snd_una + c->snd_wnd - c->snd_nxt
               : 0;
    /* RFC 5681 3.1: no more than min(cwnd, rwnd) outstanding; RFC 5681 3.2
     * Limited Transmit (RFC 3042): "On the first and second duplicate ACKs
     * received at a sender, a TCP SHOULD send a segment of previously unsent
     * data ... provided that ... the total FlightSize would remain less than
     * or equal to cwnd plus 2*SMSS ... the TCP sender MUST NOT change cwnd to
     * reflect these two segments". */
    allowed = window;
    if (!(c->flags & TCP_CF_IN_RECOVERY) && c->dupacks > 0 &&
        seq_geq(c->snd_nxt, c->snd_max))
        allowed += (c->dupacks < 2 ? c->dupacks : 2) * (uint64_t)tcp_smss(c);
    room = min32(room, allowed > flight ? (uint32_t)min64(allowed - flight,
                                                              UINT32_MAX)
                                        : 0);
    len = min32(min32(avail, room), maxdata);
    if (len < avail)
        fin = false; /* the FIN goes with the last byte */
    if (len == 0 && !fin)
        return 0;
    if (len < maxdata && seq_geq(c->snd_nxt, c->snd_max)) {
        /* 3.7.4 Nagle and 3.8.6.2.1 sender SWS avoidance: a short segment
         * only when it takes all queued data and nothing is in flight (or
         * Nagle is off, or it closes), or when it fills half the largest
         * window the peer has offered. */
        bool all = len == avail, idle = c->snd_nxt == c->snd_una;
        if (!((all && (c->cfg.nodelay || idle || fin)) ||
              (idle && len >= c->max_snd_wnd / 2)))
            return 0;
    }
    if (c->snd_nxt == c->snd_una && seq_lt(c->snd_nxt, c->snd_max))
        watch_rxt(c, now, len); /* a timeout's go-back-N reaches the hole */
    return send_data(c, now, out, c->snd_nxt, len, fin);
}

/* The sequence number of a segment that carries no data (a pure ACK, ABORT's
 * RST). RFC 9293 3.10.7.4's acknowledgment is <SEQ=SND.NXT><ACK=RCV.NXT>,
 * SND.NXT there being the next new octet: SND.MAX here, as snd_nxt goes back
 * to SND.UNA while a timeout's retransmissions run (RFC 6298 5.4). Numbered
 * from snd_nxt it would lie below what the peer received, an old duplicate
 * the peer drops unread (3.10.7.4's acceptability test) and answers with its
 * own ACK: two ends both retransmitting after a timeout each dropped the
 * other's acknowledgments for good (a member channel in chaos seed 440).
 * Past the peer's window (a zero-window probe's byte, 3.8.6.1) it would be
 * unacceptable too: the window's edge then, as Linux's tcp_acceptable_seq. */
static uint32_t acceptable_seq(const struct tcp_conn *c)
{
    uint32_t edge = c->snd_una + c->snd_wnd;

    return seq_leq(c->snd_max, edge) ? c->snd_max : edge;
}

size_t tcp_output(struct tcp_conn *c, uint64_t now_ms, uint8_t *out,
                  size_t cap)
{
    size_t n;

    if (c == NULL || out == NULL || cap < TCP_MAX_HEADER_LEN || frozen(c))
        return 0;
    if (c->pending & TCP_PEND_RST) {
        c->pending &= (uint8_t)~TCP_PEND_RST;
        return build(c, now_ms, out, c->reply_seq, c->reply_flags, 0, 0);
    }
    switch (c->state) {
    case TCP_SYN_SENT:
    case TCP_SYN_RECEIVED:
        if (!(c->pending & (TCP_PEND_SYN | TCP_PEND_ACK)))
            return 0;
        c->pending &= (uint8_t) ~(TCP_PEND_SYN | TCP_PEND_ACK);
        n = build(c, now_ms, out, c->iss,
                  c->state == TCP_SYN_RECEIVED ? TH_SYN | TH_ACK : TH_SYN, 0, 0);
        if (c->snd_max == c->iss && !(c->flags & TCP_CF_SYN_REXMIT)) {
            c->flags |= TCP_CF_RTT_TIMING; /* time the first SYN */
            c->rtt_seq = c->iss;
            c->rtt_start_ms = now_ms;
        }
        if (seq_lt(c->snd_nxt, c->iss + 1))
            c->snd_nxt = c->iss + 1;
        if (seq_lt(c->snd_max, c->iss + 1))
            c->snd_max = c->iss + 1;
        update_timers(c, now_ms);
        return n;
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT_1:
    case TCP_CLOSE_WAIT:
    case TCP_CLOSING:
    case TCP_LAST_ACK:
        if (c->dupacks_owed > 0) { /* tcp_resync: pure ACKs, before any data */
            c->dupacks_owed--;
            return build(c, now_ms, out, acceptable_seq(c), TH_ACK, 0, 0);
        }
        n = output_data(c, now_ms, out, cap);
        if (n > 0)
            return n;
        break;
    case TCP_FIN_WAIT_2:
    case TCP_TIME_WAIT:
        break;
    default:
        return 0;
    }
    if (c->pending & TCP_PEND_KA) {
        /* 3.8.4: a keepalive is "a segment with SEG.SEQ = SND.NXT-1"; with
         * nothing outstanding that is SND.UNA-1, outside the peer's window,
         * so it answers with an ACK. */
        c->pending &= (uint8_t)~TCP_PEND_KA;
        return build(c, now_ms, out, c->snd_una - 1, TH_ACK, 0, 0);
    }
    if (c->pending & TCP_PEND_ACK)
        return build(c, now_ms, out, acceptable_seq(c), TH_ACK, 0, 0);
    update_timers(c, now_ms);
    return 0;
}

/* ---- timers ------------------------------------------------------------------- */

/* RFC 6298 (5.4)-(5.7) and RFC 5681 3.1 / RFC 6582 3.2 step 4. */
static void on_retransmit_timeout(struct tcp_conn *c, uint64_t now)
{
    uint32_t limit = syn_state(c) ? c->cfg.syn_retries : c->cfg.max_retries;
    bool first = c->backoff == 0;

    if (c->flags & TCP_CF_RESYNC) {
        /* tcp_resync: the peer has not answered the probe; ask again, backing
         * off as a retransmission would, and give up as it would (no RST) */
        if (c->backoff >= limit) {
            close_conn(c, TCP_CLOSE_TIMEOUT);
            return;
        }
        c->backoff++;
        c->rto_ms = min32(c->rto_ms * 2 > c->rto_ms ? c->rto_ms * 2 : UINT32_MAX,
                          c->cfg.rto_max_ms);
        resync_probe(c);
        c->t_rtx = after(now, c->rto_ms);
        return;
    }

    if (c->snd_max == c->snd_una)
        return;
    if (c->backoff >= limit) {
        close_conn(c, TCP_CLOSE_TIMEOUT); /* 3.8.3 R2: give up, no RST */
        return;
    }
    c->backoff++;
    c->rto_ms = min32(c->rto_ms * 2 > c->rto_ms ? c->rto_ms * 2 : UINT32_MAX,
                      c->cfg.rto_max_ms); /* (5.5) back off the timer */
    /* the timeout's recovery takes over from a probe's episode */
    c->flags &= (uint16_t) ~(TCP_CF_RTT_TIMING | TCP_CF_TLP | TCP_CF_TLP_RXT |
                             TCP_CF_RXT_WATCH);
    c->t_tlp = c->t_rxt_lost = TCP_NO_DEADLINE;
    if (syn_state(c)) {
        c->flags |= TCP_CF_SYN_REXMIT;
        c->pending |= TCP_PEND_SYN;
    } else {
        tcp_cc_on_rto(c, first);
        c->recover = c->snd_max - 1;
        c->flags &= (uint16_t) ~(TCP_CF_IN_RECOVERY | TCP_CF_PARTIAL_SEEN);
        c->dupacks = 0;
        /* RFC 2018 8: "after a retransmit timeout the data sender SHOULD turn
         * off all of the SACKed bits" */
        c->sack_count = 0;
        c->snd_nxt = c->snd_una;
        c->pending |= TCP_PEND_RXT;
    }
    c->t_rtx = after(now, c->rto_ms); /* (5.6) */
}

static void on_keepalive(struct tcp_conn *c, uint64_t now)
{
    if (c->cfg.keepalive_idle_ms == 0 ||
        (c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT))
        return;
    if (c->snd_max != c->snd_una || has_unsent(c)) {
        c->t_keepalive = after(now, c->cfg.keepalive_idle_ms); /* not idle */
        return;
    }
    if (c->ka_probes >= c->cfg.keepalive_count) {
        uint32_t seq = c->snd_nxt;
        close_conn(c, TCP_CLOSE_TIMEOUT);
        queue_rst(c, seq, 0, TH_RST);
        return;
    }
    c->ka_probes++;
    c->pending |= TCP_PEND_KA;
    c->t_keepalive = after(now, c->cfg.keepalive_intvl_ms);
}

void tcp_timer(struct tcp_conn *c, uint64_t now_ms)
{
    if (c == NULL || frozen(c))
        return;
    if (c->t_timewait <= now_ms) {
        c->t_timewait = TCP_NO_DEADLINE;
        if (c->state == TCP_TIME_WAIT) {
            close_conn(c, TCP_CLOSE_NORMAL);
            return;
        }
    }
    if (c->t_rtx <= now_ms) {
        c->t_rtx = TCP_NO_DEADLINE;
        on_retransmit_timeout(c, now_ms);
        if (c->state == TCP_CLOSED)
            return;
    }
    if (c->t_tlp <= now_ms) {
        c->t_tlp = TCP_NO_DEADLINE;
        if (pto_allowed(c))
            c->pending |= TCP_PEND_TLP; /* RFC 8985 7.3 */
    }
    if (c->t_rxt_lost <= now_ms) {
        c->t_rxt_lost = TCP_NO_DEADLINE;
        lost_retransmission(c, now_ms);
    }
    if (c->t_persist <= now_ms) {
        c->t_persist = TCP_NO_DEADLINE;
        if (sending_state(c)) {
            c->pending |= TCP_PEND_PROBE;
            if (c->backoff < TCP_MAX_BACKOFF)
                c->backoff++;
            c->t_persist = after(now_ms, backed_off(c));
        }
    }
    if (c->t_delack <= now_ms) {
        c->t_delack = TCP_NO_DEADLINE;
        ack_now(c);
    }
    if (c->t_keepalive <= now_ms) {
        c->t_keepalive = TCP_NO_DEADLINE;
        on_keepalive(c, now_ms);
        if (c->state == TCP_CLOSED)
            return;
    }
    if (c->t_rcv_resync <= now_ms)
        rcv_resync_done(c);
    update_timers(c, now_ms);
}

uint64_t tcp_next_deadline(const struct tcp_conn *c)
{
    uint64_t d;

    if (c == NULL || frozen(c))
        return TCP_NO_DEADLINE;
    d = c->t_rtx;
    if (c->t_delack < d)
        d = c->t_delack;
    if (c->t_persist < d)
        d = c->t_persist;
    if (c->t_keepalive < d)
        d = c->t_keepalive;
    if (c->t_timewait < d)
        d = c->t_timewait;
    if (c->t_rcv_resync < d)
        d = c->t_rcv_resync;
    if (c->t_tlp < d)
        d = c->t_tlp;
    if (c->t_rxt_lost < d)
        d = c->t_rxt_lost;
    return d;
}

/* ---- the application's calls ------------------------------------------------ */

int64_t tcp_send(struct tcp_conn *c, const uint8_t *data, size_t n)
{
    size_t done = 0, room, written;

    if (c == NULL || (data == NULL && n > 0))
        return TCP_EINVAL;
    if (c->state == TCP_CLOSED)
        return TCP_ECLOSED;
    if (c->state == TCP_LISTEN)
        return TCP_ESTATE;
    if (c->snd_skip == 0 && c->snd_missing == 0 && fin_queued(c))
        return TCP_ESHUTDOWN;
    if (c->snd_skip > 0) {
        /* bytes written again that the peer has acknowledged meanwhile */
        done = n < c->snd_skip ? n : c->snd_skip;
        c->snd_skip -= (uint32_t)done;
    }
    room = n - done;
    if (fin_queued(c) && room > c->snd_missing)
        room = c->snd_missing; /* after CLOSE only the bytes owed */
    written = ring_write(&c->snd, data + done, room);
    c->snd_missing -= (uint32_t)(written < c->snd_missing ? written : c->snd_missing);
    return (int64_t)(done + written);
}

int64_t tcp_recv(struct tcp_conn *c, uint8_t *dst, size_t n)
{
    size_t got;

    if (c == NULL || (dst == NULL && n > 0))
        return TCP_EINVAL;
    got = ring_read(&c->rcv, dst, n);
    if (got == 0 && c->state == TCP_CLOSED &&
        c->close_reason != TCP_CLOSE_NORMAL && c->close_reason != TCP_CLOSE_NONE)
        return TCP_ECLOSED;
    if (got > 0 && !frozen(c) &&
        (c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
         c->state == TCP_FIN_WAIT_2)) {
        /* Window update when the window at least doubles and grows by the
         * SWS threshold (3.8.6.2.2). */
        uint32_t space = (uint32_t)ring_free_space(&c->rcv);
        uint32_t cur = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
        uint32_t thresh = min32((uint32_t)ring_capacity(&c->rcv) / 2, c->rcv_mss);
        if (space > cur && space - cur >= thresh && cur <= space / 2)
            ack_now(c);
    }
    return (int64_t)got;
}

bool tcp_recv_eof(const struct tcp_conn *c)
{
    return c != NULL && (c->flags & TCP_CF_RCV_FIN) && ring_length(&c->rcv) == 0;
}

int tcp_shutdown_write(struct tcp_conn *c)
{
    if (c == NULL)
        return TCP_EINVAL;
    switch (c->state) {
    case TCP_CLOSED:
        return TCP_ECLOSED;
    case TCP_LISTEN:
        return TCP_ESTATE;
    case TCP_SYN_SENT:
        /* 3.10.4: "Delete the TCB and return 'error: closing' responses to
         * any queued SENDs" */
        close_conn(c, TCP_CLOSE_ABORTED);
        return TCP_OK;
    case TCP_SYN_RECEIVED: /* FIN-WAIT-1 once established */
        c->flags |= TCP_CF_FIN_QUEUED;
        return TCP_OK;
    case TCP_ESTABLISHED:
        c->flags |= TCP_CF_FIN_QUEUED;
        c->state = TCP_FIN_WAIT_1;
        return TCP_OK;
    case TCP_CLOSE_WAIT:
        c->flags |= TCP_CF_FIN_QUEUED;
        c->state = TCP_LAST_ACK;
        return TCP_OK;
    default:
        return TCP_OK; /* already closing */
    }
}

int tcp_abort(struct tcp_conn *c)
{
    uint8_t state;
    uint32_t seq;

    if (c == NULL)
        return TCP_EINVAL;
    state = c->state;
    seq = acceptable_seq(c); /* 3.10.5's SND.NXT: see acceptable_seq */
    if (state == TCP_CLOSED)
        return TCP_OK;
    close_conn(c, TCP_CLOSE_ABORTED);
    /* 3.10.5: in SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 and
     * CLOSE-WAIT "send a reset segment: <SEQ=SND.NXT><CTL=RST>" (never when
     * frozen: queue_rst refuses) */
    if (state == TCP_SYN_RECEIVED || state == TCP_ESTABLISHED ||
        state == TCP_FIN_WAIT_1 || state == TCP_FIN_WAIT_2 ||
        state == TCP_CLOSE_WAIT)
        queue_rst(c, seq, 0, TH_RST);
    return TCP_OK;
}

/* ---- freeze and thaw ----------------------------------------------------------- */

int tcp_freeze(struct tcp_conn *c, uint64_t now_ms)
{
    if (c == NULL)
        return TCP_EINVAL;
    if (frozen(c))
        return TCP_OK;
    c->flags |= TCP_CF_FROZEN;
    c->frozen_at_ms = now_ms;
    c->pending &= (uint8_t)~TCP_PEND_RST;
    return TCP_OK;
}

/* A deadline set on the frozen clock, moved to the thawing one. */
static uint64_t rebase_deadline(const struct tcp_conn *c, uint64_t d, uint64_t now)
{
    if (d == TCP_NO_DEADLINE)
        return d;
    return after(now, d > c->frozen_at_ms ? d - c->frozen_at_ms : 0);
}

/* A past instant, moved the same way. */
static uint64_t rebase_past(const struct tcp_conn *c, uint64_t t, uint64_t now)
{
    uint64_t age = c->frozen_at_ms > t ? c->frozen_at_ms - t : 0;
    return now > age ? now - age : 0;
}

int tcp_thaw(struct tcp_conn *c, uint64_t now_ms)
{
    if (c == NULL)
        return TCP_EINVAL;
    if (!frozen(c))
        return TCP_OK;
    c->t_rtx = rebase_deadline(c, c->t_rtx, now_ms);
    c->t_delack = rebase_deadline(c, c->t_delack, now_ms);
    c->t_persist = rebase_deadline(c, c->t_persist, now_ms);
    c->t_keepalive = rebase_deadline(c, c->t_keepalive, now_ms);
    c->t_timewait = rebase_deadline(c, c->t_timewait, now_ms);
    c->t_tlp = rebase_deadline(c, c->t_tlp, now_ms);
    c->t_rxt_lost = rebase_deadline(c, c->t_rxt_lost, now_ms);
    c->rxt_una_ms = rebase_past(c, c->rxt_una_ms, now_ms);
    c->rtt_start_ms = rebase_past(c, c->rtt_start_ms, now_ms);
    c->ts_recent_ms = rebase_past(c, c->ts_recent_ms, now_ms);
    /* the timestamp clock goes on from its value at the freeze (RFC 7323
     * 5.4 only asks it to be monotonic) */
    c->ts_offset += (uint32_t)c->frozen_at_ms - (uint32_t)now_ms;
    c->chack_window_ms = now_ms;
    c->chack_count = 0;
    c->flags &= (uint16_t)~TCP_CF_FROZEN;
    /* The peer's acknowledgements of what was outstanding at the freeze went
     * to the frozen instance (or to the member it left), so none may come here
     * until the retransmission timer fires, a second or more on. The segment
     * at SND.UNA goes out at once instead: if the peer has it, it answers with
     * an immediate ACK (RFC 9293 3.10.7.4, a duplicate), which tells this
     * instance where the peer stands; if not, it was due anyway. Not a
     * timeout: cwnd and the back-off stay as they were. */
    if (c->flags & TCP_CF_RESYNC) {
        /* the probe (tcp_resync), asked again from the minimum RTO on: the replica's
         * timer and back-off are the dead holder's, and a peer may leave one probe
         * unanswered (Linux answers out-of-window segments at most every 500 ms) */
        resync_probe(c);
        c->backoff = 0;
        c->rto_ms = c->cfg.rto_min_ms;
        c->t_rtx = after(now_ms, c->rto_ms);
    } else if (c->snd_max != c->snd_una && !syn_state(c)) {
        c->pending |= TCP_PEND_RXT;
    }
    return TCP_OK;
}

int tcp_release(struct tcp_conn *c, uint64_t now_ms)
{
    uint64_t rto;

    if (c == NULL)
        return TCP_EINVAL;
    if (frozen(c))
        return TCP_ESTATE;
    if (c->backoff == 0)
        return TCP_OK;
    /* the timeouts that passed while the segments were kept back lost
     * nothing: the back-off goes (RFC 6298 5.7's re-initialization after
     * timeouts that were not losses), the timer starts again from now */
    c->backoff = 0;
    rto = c->srtt_ms ? (uint64_t)c->srtt_ms + max32(1, 4 * c->rttvar_ms) : c->cfg.rto_initial_ms;
    if (rto < c->cfg.rto_min_ms)
        rto = c->cfg.rto_min_ms;
    if (rto > c->cfg.rto_max_ms)
        rto = c->cfg.rto_max_ms;
    c->rto_ms = (uint32_t)rto;
    if (c->t_rtx != TCP_NO_DEADLINE)
        c->t_rtx = after(now_ms, c->rto_ms);
    return TCP_OK;
}

int tcp_resync(struct tcp_conn *c, uint32_t age_ms, uint32_t wait_ms)
{
    if (c == NULL)
        return TCP_EINVAL;
    if (!frozen(c))
        return TCP_ESTATE;
    /* A replica taken after the application closed: its FIN, like its
     * unacknowledged bytes, is the application's to send again (it writes
     * from the resynchronized offset and closes), so writing reopens. */
    switch (c->state) {
    case TCP_SYN_RECEIVED:
        /* taken before the handshake completed: the holder had sent nothing
         * but its SYN-ACK, so the peer's next segment (its ACK of ISS+1, or
         * its SYN again) finds this one where the peer stands; no probe, only
         * the timestamp clock moves on (below) */
    case TCP_FIN_WAIT_2:
        /* everything the holder sent, its FIN too, was acknowledged, and it
         * sends nothing more: the peer's next segment (its FIN, or data of
         * its half) finds this one where the peer stands, as above */
    case TCP_TIME_WAIT:
        /* as FIN_WAIT_2, and the peer's FIN taken too: the only segment
         * still to come is that FIN again (RFC 9293 3.10.7.4: acknowledged,
         * the 2 MSL timeout restarted) if the holder's acknowledgement of
         * it was lost */
        break;
    case TCP_ESTABLISHED:
    case TCP_CLOSE_WAIT:
        break;
    case TCP_FIN_WAIT_1:
        c->state = TCP_ESTABLISHED;
        break;
    case TCP_CLOSING:
    case TCP_LAST_ACK:
        c->state = TCP_CLOSE_WAIT;
        break;
    default:
        return TCP_ESTATE;
    }
    if (c->state != TCP_SYN_RECEIVED && c->state != TCP_FIN_WAIT_2 &&
        c->state != TCP_TIME_WAIT) {
        if (c->flags & TCP_CF_FIN_QUEUED) {
            /* a FIN already sent took a sequence number past the stream */
            uint64_t total = (uint64_t)ring_length(&c->snd) + c->snd_missing;

            if ((uint64_t)(c->snd_max - c->snd_una) > total) {
                c->snd_max--;
                if (seq_gt(c->snd_nxt, c->snd_max))
                    c->snd_nxt = c->snd_max;
            }
            c->flags &= (uint16_t)~TCP_CF_FIN_QUEUED;
        }
        c->flags |= TCP_CF_RESYNC;
        c->resync_gap = 0;
    }
    /* RFC 7323 5.3: the holder's timestamp clock ran on for age_ms after the
     * replica, and the peer's TS.Recent is its last TSval.  A probe stamped
     * older fails the peer's PAWS test, and Linux (6.15 on) drops a pure ACK
     * that fails it without the duplicate ACK that would answer the probe:
     * the clock resumes at least where the holder's could have been. */
    if (c->flags & TCP_CF_TS_OK)
        c->ts_offset += age_ms;
    if (wait_ms == 0)
        wait_ms = age_ms > c->cfg.rto_max_ms / 2 ? c->cfg.rto_max_ms : 2 * age_ms;
    c->rcv_resync_wait_ms = min32(wait_ms, c->cfg.rto_max_ms);
    return TCP_OK;
}

/* ---- consistency ---------------------------------------------------------------- */

int tcp_conn_check(const struct tcp_conn *c)
{
    uint32_t ring, outstanding, i, prev = 0;
    uint64_t total;
    bool fq, fin_rcvd_state;

    if (c == NULL || tcp_config_check(&c->cfg) != TCP_OK)
        return TCP_SNAP_EINVAL;
    if (!ring_valid(&c->snd) || !ring_valid(&c->rcv) || !reasm_valid(&c->reasm))
        return TCP_SNAP_EDATA;
    if (c->reasm.limit != c->cfg.reasm_limit)
        return TCP_SNAP_ERING;
    if (c->state > TCP_TIME_WAIT)
        return TCP_SNAP_ESTATE;
    if (c->flags & ~(TCP_CF_EXPORTED | TCP_CF_FROZEN | TCP_CF_RTT_TIMING |
                     TCP_CF_RCV_FIN | TCP_CF_RESYNC | TCP_CF_RESYNCED | TCP_CF_TLP |
                     TCP_CF_TLP_RXT | TCP_CF_RXT_WATCH))
        return TCP_SNAP_EFLAGS;
    if (((c->flags & TCP_CF_TLP_RXT) && !(c->flags & TCP_CF_TLP)) ||
        ((c->flags & TCP_CF_RXT_WATCH) && !in_loss_recovery(c)) ||
        (c->t_rxt_lost != TCP_NO_DEADLINE && !(c->flags & TCP_CF_RXT_WATCH)))
        return TCP_SNAP_EFLAGS;
    if (c->pending & ~0x7F)
        return TCP_SNAP_EFLAGS;
    if (c->cc_algo >= TCP_CC_COUNT)
        return TCP_SNAP_ECONGESTION;
    if (c->state == TCP_CLOSED || c->state == TCP_LISTEN)
        return TCP_SNAP_OK;

    /* In SYN-SENT our shift is offered but not yet agreed. */
    if (c->snd_wscale > TCP_MAX_WSCALE || c->rcv_wscale > TCP_MAX_WSCALE ||
        (!(c->flags & TCP_CF_WS_OK) &&
         (c->snd_wscale || (c->rcv_wscale && c->state != TCP_SYN_SENT))))
        return TCP_SNAP_EOPTIONS;
    if (c->snd_mss < TCP_MIN_MSS || c->rcv_mss < TCP_MIN_MSS)
        return TCP_SNAP_EOPTIONS;

    ring = (uint32_t)ring_length(&c->snd);
    total = (uint64_t)ring + c->snd_missing;
    outstanding = c->snd_max - c->snd_una;
    fq = fin_queued(c);
    if (c->snd_missing > TCP_RING_MAX_CAPACITY || c->snd_skip > TCP_RING_MAX_CAPACITY ||
        (c->snd_skip > 0 && ring > 0))
        return TCP_SNAP_EDATA;
    if (c->snd_nxt - c->snd_una > outstanding)
        return TCP_SNAP_ESEQUENCE;
    if (syn_state(c)) {
        if (outstanding > 1 || c->snd_off != 0 || c->rcv_off != 0 || c->snd_skip)
            return TCP_SNAP_ESEQUENCE;
        if ((c->state == TCP_SYN_SENT && fq) ||
            (c->flags & (TCP_CF_RCV_FIN | TCP_CF_IN_RECOVERY | TCP_CF_PARTIAL_SEEN |
                         TCP_CF_TLP)))
            return TCP_SNAP_ESTATE;
        if (ring_length(&c->rcv) != 0 || c->reasm.count != 0)
            return TCP_SNAP_EDATA;
        if (c->sack_count != 0)
            return TCP_SNAP_ESACK;
        if (c->t_timewait != TCP_NO_DEADLINE)
            return TCP_SNAP_ETIMER;
    } else {
        if (outstanding > total + (fq ? 1 : 0))
            return TCP_SNAP_ESEQUENCE;
        switch (c->state) {
        case TCP_ESTABLISHED:
        case TCP_CLOSE_WAIT:
            if (fq)
                return TCP_SNAP_ESTATE;
            break;
        case TCP_FIN_WAIT_2:
        case TCP_TIME_WAIT:
            if (!fq)
                return TCP_SNAP_ESTATE;
            if (outstanding != 0 || total != 0)
                return TCP_SNAP_ESEQUENCE;
            break;
        default:
            if (!fq)
                return TCP_SNAP_ESTATE;
            break;
        }
        fin_rcvd_state = c->state == TCP_CLOSE_WAIT || c->state == TCP_CLOSING ||
                         c->state == TCP_LAST_ACK || c->state == TCP_TIME_WAIT;
        if (fin_rcvd_state != ((c->flags & TCP_CF_RCV_FIN) != 0))
            return TCP_SNAP_ESTATE;
        if (fin_rcvd_state && c->reasm.count != 0)
            return TCP_SNAP_EDATA;
        if ((c->flags & TCP_CF_PARTIAL_SEEN) && !(c->flags & TCP_CF_IN_RECOVERY))
            return TCP_SNAP_EFLAGS;
        if ((c->flags & TCP_CF_IN_RECOVERY) && c->snd_rxt - c->snd_una > outstanding)
            return TCP_SNAP_ESEQUENCE;
        /* a probe's episode lasts while SND.UNA <= TLP.end_seq <= SND.MAX (at
         * TLP.end_seq it waits for what the peer says of the probe) */
        if ((c->flags & TCP_CF_TLP) &&
            (c->tlp_end - c->snd_una > outstanding || seq_gt(c->tlp_start, c->tlp_end)))
            return TCP_SNAP_ESEQUENCE;
        if ((c->state == TCP_TIME_WAIT) != (c->t_timewait != TCP_NO_DEADLINE))
            return TCP_SNAP_ETIMER;
    }
    if (c->snd_off > ((uint64_t)1 << 62) || c->rcv_off > ((uint64_t)1 << 62))
        return TCP_SNAP_ESEQUENCE;
    if (c->snd_wnd > TCP_MAX_WINDOW || c->max_snd_wnd > TCP_MAX_WINDOW ||
        c->snd_wnd > c->max_snd_wnd)
        return TCP_SNAP_EWINDOW;
    if (c->state != TCP_SYN_SENT) {
        if (c->rcv_adv - c->rcv_nxt > (65535u << c->rcv_wscale))
            return TCP_SNAP_EWINDOW;
        if (c->rcv_nxt - c->last_ack_sent > TCP_RING_MAX_CAPACITY + 1u)
            return TCP_SNAP_ESEQUENCE;
    }
    if (c->srtt_ms > TCP_RTT_LIMIT_MS || c->rttvar_ms > TCP_RTT_LIMIT_MS ||
        c->rto_ms < 1 || c->rto_ms > TCP_RTT_LIMIT_MS ||
        (c->srtt_ms == 0 && c->rttvar_ms != 0))
        return TCP_SNAP_ERTT;
    if (c->cwnd < 1 || c->cwnd > TCP_CWND_MAX || c->ssthresh < 1 ||
        c->ssthresh > TCP_CWND_MAX)
        return TCP_SNAP_ECONGESTION;
    if (!tcp_cc_check(c))
        return TCP_SNAP_ECONGESTION;
    if (c->backoff > TCP_MAX_BACKOFF)
        return TCP_SNAP_ETIMER;
    if (c->sack_count > TCP_SACK_MAX ||
        (!(c->flags & TCP_CF_SACK_OK) && c->sack_count != 0))
        return TCP_SNAP_ESACK;
    for (i = 0; i < c->sack_count; i++) {
        uint32_t l = c->sack[i].start - c->snd_una, r = c->sack[i].end - c->snd_una;
        if (l == 0 || l >= r || r > outstanding || (i > 0 && l <= prev))
            return TCP_SNAP_ESACK;
        prev = r;
    }
    if (c->reasm.count > 0) {
        const struct tcp_reasm_interval *last = &c->reasm.iv[c->reasm.count - 1];
        if ((uint64_t)last->offset + last->length > ring_free_space(&c->rcv))
            return TCP_SNAP_EDATA;
    }
    return TCP_SNAP_OK;
}
