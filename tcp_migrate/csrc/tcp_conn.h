/*
 * tcp_conn.h: one TCP connection (RFC 9293) whose whole state is a struct of
 * fixed-width fields plus the two byte rings of tcp_ring.h.
 *
 * Sans-I/O: the caller hands the core whole TCP segments (header + payload,
 * as carried in an IPv6 packet) with tcp_input(), asks for the next segment
 * to send with tcp_output() until it returns 0, calls tcp_timer() at or after
 * tcp_next_deadline(), and moves application bytes with tcp_send() and
 * tcp_recv().  Call tcp_output() after every tcp_input(), tcp_timer(),
 * tcp_send(), tcp_recv(), tcp_shutdown_write() and tcp_thaw(): an ACK owed
 * is a flag, not a count, so several segments handled before one output
 * call are answered by a single ACK (which hides duplicate ACKs from the
 * peer).  Time is always passed in, in milliseconds of a monotonic clock
 * (`now_ms`); the core reads no clock and draws no random numbers (the ISS
 * and the timestamp offset are arguments).
 *
 * Checksums: tcp_input() verifies the TCP checksum itself over the IPv6
 * pseudo-header (RFC 8200 8.1) built from the addresses stored in the
 * connection, and tcp_output() fills it in the same way.  The caller has
 * matched the IPv6 addresses to the connection (for Mobile IPv6 these are the
 * home addresses, RFC 3775 6.3); tcp_input() checks the ports.
 *
 * Byte order: segments are in network byte order; every field of the struct
 * is in host order.  Sequence numbers are modulo 2^32 (tcp_seq.h).
 *
 * Units: times and durations in milliseconds; windows, MSS and buffer sizes
 * in bytes (windows after scaling unless the name says otherwise).
 *
 * Bounds: every function checks its pointer and length arguments and never
 * reads a segment outside segment[0 .. len) nor writes outside
 * out[0 .. cap); options with bad lengths make the segment be dropped.
 */
#ifndef TCP_MIGRATE_TCP_CONN_H
#define TCP_MIGRATE_TCP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcp_ring.h"

#define TCP_HEADER_LEN 20      /* fixed header, RFC 9293 3.1 */
#define TCP_MAX_HEADER_LEN 60  /* Data Offset 15 */
#define TCP_MIN_MSS 64         /* smallest send MSS we use (peers asking for
                                  less are clamped, as Linux does with 48) */
#define TCP_DEFAULT_MSS 1220   /* RFC 9293 3.7.1: no MSS option, IPv6 */
#define TCP_MAX_WSCALE 14      /* RFC 7323 2.3 */
#define TCP_MAX_WINDOW 1073725440 /* 65535 << 14 */
#define TCP_SACK_MAX 8         /* blocks in the sender's SACK scoreboard */
#define TCP_RTT_LIMIT_MS 86400000 /* srtt, rttvar and rto never exceed a day */
#define TCP_MAX_BACKOFF 32     /* consecutive timeouts counted */

/* A deadline that is not armed. */
#define TCP_NO_DEADLINE UINT64_MAX

/* RFC 9293 3.3.2. */
enum tcp_state {
    TCP_CLOSED = 0,
    TCP_LISTEN = 1,
    TCP_SYN_SENT = 2,
    TCP_SYN_RECEIVED = 3,
    TCP_ESTABLISHED = 4,
    TCP_FIN_WAIT_1 = 5,
    TCP_FIN_WAIT_2 = 6,
    TCP_CLOSE_WAIT = 7,
    TCP_CLOSING = 8,
    TCP_LAST_ACK = 9,
    TCP_TIME_WAIT = 10,
};

/* Why a connection is CLOSED (struct tcp_conn.close_reason). */
enum tcp_close_reason {
    TCP_CLOSE_NONE = 0,    /* not closed, or never opened */
    TCP_CLOSE_NORMAL = 1,  /* both FINs exchanged and acknowledged */
    TCP_CLOSE_RESET = 2,   /* a valid RST arrived ("connection reset") */
    TCP_CLOSE_REFUSED = 3, /* RST in answer to our SYN ("connection refused") */
    TCP_CLOSE_TIMEOUT = 4, /* retransmissions or keepalive probes gave up */
    TCP_CLOSE_ABORTED = 5, /* tcp_abort() */
    TCP_CLOSE_RESYNC = 6,  /* tcp_resync: the peer stood beyond what it may take */
};

/* Results of the application calls (negative) and of tcp_conn_init. */
enum tcp_status {
    TCP_OK = 0,
    TCP_EINVAL = -1,    /* NULL pointer or argument out of range */
    TCP_ESTATE = -2,    /* not possible in this state */
    TCP_ESHUTDOWN = -3, /* tcp_send after tcp_shutdown_write */
    TCP_ECLOSED = -4,   /* the connection is closed (see close_reason) */
};

/* What tcp_input() did with a segment. */
enum tcp_input_result {
    TCP_IN_OK = 0,             /* processed */
    TCP_IN_FROZEN = 1,         /* frozen: dropped silently, nothing changed */
    TCP_IN_MALFORMED = 2,      /* too short, bad Data Offset or option length */
    TCP_IN_BAD_CHECKSUM = 3,   /* checksum does not verify */
    TCP_IN_WRONG_PORTS = 4,    /* ports are not this connection's */
    TCP_IN_CLOSED = 5,         /* CLOSED or LISTEN: nothing to do */
    TCP_IN_UNACCEPTABLE = 6,   /* sequence number outside the window: ACK */
    TCP_IN_PAWS = 7,           /* RFC 7323 5.3 old timestamp: ACK, dropped */
    TCP_IN_CHALLENGE = 8,      /* RFC 5961: challenge ACK queued, dropped */
    TCP_IN_CHALLENGE_LIMITED = 9, /* RFC 5961 7: would challenge, rate-limited */
    TCP_IN_RESET = 10,         /* valid RST: the connection is closed */
    TCP_IN_BAD_ACK = 11,       /* unacceptable ACK: ACK or RST reply queued */
    TCP_IN_DROPPED = 12,       /* dropped silently by the state machine rules */
    TCP_IN_RESYNC_REFUSED = 13, /* tcp_resync: out of bounds, reset (RST queued) */
};

/* Congestion control algorithms (tcp_cc.c switches on this, no function
 * pointers so the state stays plain data). */
enum tcp_cc_algo {
    TCP_CC_NEWRENO = 0, /* RFC 5681 + RFC 6582 */
    TCP_CC_COUNT = 1,
};

/* struct tcp_conn.flags, low byte: negotiated or long-lived, exported. */
#define TCP_CF_SACK_OK 0x0001      /* RFC 2018: both sent SACK-permitted */
#define TCP_CF_TS_OK 0x0002        /* RFC 7323: timestamps in use */
#define TCP_CF_WS_OK 0x0004        /* RFC 7323: window scaling in use */
#define TCP_CF_FIN_QUEUED 0x0008   /* application shut down writing */
#define TCP_CF_IN_RECOVERY 0x0010  /* RFC 6582 fast recovery */
#define TCP_CF_PARTIAL_SEEN 0x0020 /* RFC 6582: first partial ACK seen */
#define TCP_CF_SYN_REXMIT 0x0040   /* RFC 6298 5.7: the SYN was retransmitted */
#define TCP_CF_PASSIVE 0x0080      /* opened by tcp_open_passive */
#define TCP_CF_EXPORTED 0x00FF
/* High byte: local to this instance, never exported. */
#define TCP_CF_FROZEN 0x0100  /* tcp_freeze: no output, input dropped */
#define TCP_CF_RTT_TIMING 0x0200 /* rtt_seq is being timed (no timestamps) */
#define TCP_CF_RCV_FIN 0x0400    /* FIN received: end of stream for tcp_recv */
#define TCP_CF_RESYNC 0x0800     /* tcp_resync: the peer's next ACK sets both sides */
#define TCP_CF_RESYNCED 0x1000   /* set by it; an ACK past SND.MAX sets them again, until
                                    the peer acknowledges data sent since and reports
                                    (SACK) nothing past SND.MAX (what the application
                                    wrote meanwhile is kept: the bytes the peer holds
                                    leave the ring, or are skipped) */
#define TCP_CF_TLP 0x2000        /* RFC 8985 7: a loss probe is outstanding (TLP.end_seq set) */
#define TCP_CF_TLP_RXT 0x4000    /* ... and it sent data again (TLP.is_retrans) */
#define TCP_CF_RXT_WATCH 0x8000  /* fast recovery: the hole at SND.UNA went again (rxt_*) */

/* tcp_resync: how far the peer may stand beyond the replica, each direction */
#define TCP_RESYNC_LIMIT (1u << 30)

/* struct tcp_conn.pending: segments tcp_output() owes. */
#define TCP_PEND_ACK 0x01   /* an ACK now (not delayed) */
#define TCP_PEND_SYN 0x02   /* (re)send SYN or SYN-ACK */
#define TCP_PEND_RXT 0x04   /* retransmit the segment at SND.UNA now */
#define TCP_PEND_PROBE 0x08 /* zero-window probe (RFC 9293 3.8.6.1) */
#define TCP_PEND_KA 0x10    /* keepalive probe (RFC 9293 3.8.4) */
#define TCP_PEND_RST 0x20   /* the RST in reply_seq/reply_ack/reply_flags */
#define TCP_PEND_TLP 0x40   /* the tail loss probe (RFC 8985 7.3) */

/*
 * Settings.  Not part of the exported state: an imported connection runs
 * with the acceptor's settings (tcp_conn_init).  Zero means "off" only where
 * it says so.
 */
struct tcp_config {
    uint32_t rto_initial_ms;    /* RFC 6298 2.1: 1000 */
    uint32_t rto_min_ms;        /* RFC 6298 2.4: 1000 */
    uint32_t rto_max_ms;        /* RFC 6298 2.5: at least 60000 */
    uint32_t delack_ms;         /* RFC 9293 3.8.6.3: < 500; default 200 */
    uint32_t time_wait_ms;      /* 2*MSL, RFC 9293 3.4.2 (MSL 2 min): 240000 */
    uint32_t keepalive_idle_ms; /* 0: no keepalives (RFC 9293 3.8.4 default) */
    uint32_t keepalive_intvl_ms;
    uint32_t keepalive_count;   /* unanswered probes before giving up */
    uint32_t challenge_ack_limit; /* RFC 5961 7: challenge ACKs per second */
    uint32_t max_retries;       /* consecutive RTOs before giving up (R2) */
    uint32_t syn_retries;       /* SYN retransmissions before giving up */
    uint16_t mss;               /* MSS we advertise: 1440 for a 1500 link */
    uint8_t sack;               /* offer SACK-permitted */
    uint8_t timestamps;         /* offer timestamps */
    uint8_t window_scaling;     /* offer window scaling */
    uint8_t nodelay;            /* 1: no Nagle (RFC 9293 3.7.4) */
    uint8_t cc_algo;            /* enum tcp_cc_algo */
    uint8_t reasm_limit;        /* out-of-order intervals kept, 1..32 */
    uint8_t initial_window;     /* segments, RFC 6928 (Linux: 10); 0: RFC 5681 3.1's
                                   (3390) 2 to 4 segments.  At most TCP_IW_MAX */
};

#define TCP_IW_MAX 64

/* One SACKed range [start, end) in the sender's scoreboard. */
struct tcp_sack_block {
    uint32_t start;
    uint32_t end;
};

struct tcp_conn {
    /* identity: the pseudo-header addresses and the ports */
    uint8_t local_addr[16];
    uint8_t remote_addr[16];
    uint16_t local_port;
    uint16_t remote_port;

    uint8_t state;        /* enum tcp_state */
    uint8_t close_reason; /* enum tcp_close_reason */
    uint8_t pending;      /* TCP_PEND_* */
    uint8_t cc_algo;      /* enum tcp_cc_algo */
    uint16_t flags;       /* TCP_CF_* */
    uint8_t snd_wscale;   /* peer's shift: SEG.WND << snd_wscale */
    uint8_t rcv_wscale;   /* our shift */
    uint8_t dupacks;      /* RFC 5681 duplicate ACK count (saturates) */
    uint8_t backoff;      /* consecutive RTO or persist timeouts */
    uint8_t ka_probes;    /* unanswered keepalive probes */
    uint8_t sack_count;   /* blocks in use in sack[] */
    uint8_t unacked_segs; /* in-order segments received since our last ACK */
    uint8_t reply_flags;  /* TCP_PEND_RST reply: control bits */
    uint16_t snd_mss;     /* largest segment the peer takes (its MSS option) */
    uint16_t rcv_mss;     /* the MSS we advertised */

    /* send sequence space, RFC 9293 3.3.1 */
    uint32_t iss;
    uint32_t snd_una;
    uint32_t snd_nxt;     /* next to send; pulled back to SND.UNA on RTO */
    uint32_t snd_max;     /* highest sequence number sent + 1 */
    uint32_t snd_wnd;     /* after scaling */
    uint32_t max_snd_wnd; /* RFC 5961 5.2 MAX.SND.WND */
    uint32_t snd_wl1;
    uint32_t snd_wl2;
    uint32_t snd_rxt;     /* fast recovery: next hole byte to retransmit */
    uint32_t snd_missing; /* bytes of the stream after the send ring's
                             content that the application must write again
                             (import of a snapshot without unacked data) */
    uint32_t snd_skip;    /* bytes the application will write again that are
                             already acknowledged: dropped when written */
    uint64_t snd_off;     /* stream offset of SND.UNA: data bytes acked */

    /* receive sequence space */
    uint32_t irs;
    uint32_t rcv_nxt;
    uint32_t rcv_adv;     /* right edge of the window we advertised */
    uint32_t sack_recent; /* RFC 2018 4: offset (from RCV.NXT) of the most
                             recent out-of-order segment */
    uint64_t rcv_off;     /* stream offset of RCV.NXT: data bytes received */

    /* timestamps, RFC 7323 */
    uint32_t ts_recent;
    uint32_t last_ack_sent;
    uint32_t ts_offset;   /* TSval = now_ms + ts_offset (mod 2^32) */
    uint64_t ts_recent_ms; /* when ts_recent was set (PAWS 24-day rule) */

    /* round-trip time, RFC 6298; 0 srtt means no measurement yet */
    uint32_t srtt_ms;
    uint32_t rttvar_ms;
    uint32_t rto_ms;
    uint32_t rtt_seq;     /* without timestamps: the segment being timed */
    uint64_t rtt_start_ms;

    /* congestion control, RFC 5681 and RFC 6582 */
    uint32_t cwnd;
    uint32_t ssthresh;
    uint32_t recover;
    uint32_t cc_priv[4];  /* per-algorithm state (unused by NewReno) */

    /* timers: absolute deadlines, TCP_NO_DEADLINE when not armed */
    uint64_t t_rtx;
    uint64_t t_delack;
    uint64_t t_persist;
    uint64_t t_keepalive;
    uint64_t t_timewait;
    uint64_t frozen_at_ms; /* tcp_freeze time; deadlines are kept as is */

    /* RFC 5961 7 challenge ACK throttle */
    uint64_t chack_window_ms;
    uint32_t chack_count;

    /* the RST reply owed by TCP_PEND_RST */
    uint32_t reply_seq;
    uint32_t reply_ack;

    /* tcp_resync: stream bytes the peer sent that the replica's holder had
     * received (and acknowledged) and this instance never will */
    uint32_t resync_gap;
    /* tcp_resync: where the peer's sending stood at its answer. RCV.NXT stays
     * at the replica's until t_rcv_resync: what the peer sent beyond it may be
     * unacknowledged (the peer sends it again, hurried by dupacks_owed
     * duplicate ACKs) or acknowledged by the dead holder (never again: at
     * t_rcv_resync RCV.NXT goes to rcv_resync_to, the skip in resync_gap).
     * rcv_resync_wait_ms: tcp_resync's wait_ms, how much longer than a
     * retransmission timeout: the peer's timer backed off while it sent to the
     * dead holder */
    uint32_t rcv_resync_to;
    uint32_t dupacks_owed;
    uint64_t t_rcv_resync;
    uint32_t rcv_resync_wait_ms;

    /* RFC 8985 7, the tail loss probe: the probe timeout's deadline (PTO),
     * and the probe's sequence range while it is outstanding (TCP_CF_TLP;
     * tlp_end is TLP.end_seq).  Not exported: an imported connection arms
     * its own at its first transmission or ACK. */
    uint64_t t_tlp;
    uint32_t tlp_start;
    uint32_t tlp_end;

    /* RFC 8985 6.2 for the hole at SND.UNA in fast recovery or a timeout's
     * (TCP_CF_RXT_WATCH): when it went again, where it ends, and SND.MAX then
     * (anything SACKed above was sent after it); t_rxt_lost, when it counts as
     * lost if such a SACK came before (RACK's reordering timer, 6.3: no later
     * ACK need come to find it).  Not exported. */
    uint64_t rxt_una_ms;
    uint32_t rxt_una_end;
    uint32_t rxt_una_max;
    uint64_t t_rxt_lost;

    struct tcp_sack_block sack[TCP_SACK_MAX]; /* SACKed by the peer, sorted,
                                                 apart, in (SND.UNA, SND.MAX] */
    struct tcp_config cfg;
    struct tcp_ring snd; /* bytes from SND.UNA: unacknowledged, then unsent */
    struct tcp_ring rcv; /* readable bytes, then out-of-order ones */
    struct tcp_reasm reasm;
};

/* Defaults named in struct tcp_config. */
void tcp_config_default(struct tcp_config *cfg);
/* TCP_OK, or TCP_EINVAL when a setting is out of range. */
int tcp_config_check(const struct tcp_config *cfg);

/*
 * A CLOSED connection with settings, 4-tuple and ring memory (owned by the
 * caller, capacities up to TCP_RING_MAX_CAPACITY; mem may be NULL when the
 * capacity is 0).  Addresses are 16 bytes.
 */
int tcp_conn_init(struct tcp_conn *c, const struct tcp_config *cfg,
                  const uint8_t *local_addr, uint16_t local_port,
                  const uint8_t *remote_addr, uint16_t remote_port,
                  uint8_t *snd_mem, size_t snd_cap, uint8_t *rcv_mem,
                  size_t rcv_cap);

/* Active open (RFC 9293 3.10.1): SYN-SENT; tcp_output() emits the SYN. */
int tcp_open_active(struct tcp_conn *c, uint64_t now_ms, uint32_t iss,
                    uint32_t ts_offset);
/*
 * Passive open from a received SYN (the LISTEN rules of RFC 9293 3.10.7.2):
 * SYN-RECEIVED; tcp_output() emits the SYN-ACK.  Returns an enum
 * tcp_input_result: TCP_IN_OK, or why the segment is not an acceptable SYN
 * (TCP_IN_DROPPED: not SYN alone, or carrying RST or ACK) and the connection
 * stays CLOSED.
 */
int tcp_open_passive(struct tcp_conn *c, uint64_t now_ms,
                     const uint8_t *segment, size_t len, uint32_t iss,
                     uint32_t ts_offset);

/* Processes one segment (TCP header + payload); enum tcp_input_result. */
int tcp_input(struct tcp_conn *c, uint64_t now_ms, const uint8_t *segment,
              size_t len);
/*
 * Writes the next segment due (header, options, payload, checksum) into out
 * and returns its length, or 0 when nothing is due (or cap is below
 * TCP_MAX_HEADER_LEN, or the connection is frozen).  Call until it returns 0.
 * Full-sized segments need cap >= snd_mss + TCP_MAX_HEADER_LEN (cfg.mss +
 * TCP_MAX_HEADER_LEN always suffices); a smaller cap gives smaller segments.
 */
size_t tcp_output(struct tcp_conn *c, uint64_t now_ms, uint8_t *out,
                  size_t cap);
/* Handles every deadline at or before now_ms. */
void tcp_timer(struct tcp_conn *c, uint64_t now_ms);
/* Earliest armed deadline, TCP_NO_DEADLINE if none (or frozen). */
uint64_t tcp_next_deadline(const struct tcp_conn *c);

/* Copies up to n bytes into the send ring; bytes accepted or tcp_status. */
int64_t tcp_send(struct tcp_conn *c, const uint8_t *data, size_t n);
/* Copies up to n readable bytes out; bytes copied (0 at end of stream or
 * when nothing is readable; see tcp_recv_eof) or tcp_status. */
int64_t tcp_recv(struct tcp_conn *c, uint8_t *dst, size_t n);
/* Whether the peer's FIN has been received and every byte read. */
bool tcp_recv_eof(const struct tcp_conn *c);
/* RFC 9293 3.10.4 CLOSE: queue a FIN after the data; reading continues. */
int tcp_shutdown_write(struct tcp_conn *c);
/* RFC 9293 3.10.5 ABORT: RST when synchronized, then CLOSED. */
int tcp_abort(struct tcp_conn *c);

/* Freeze: from now on tcp_output() emits nothing (not even a RST),
 * tcp_input() drops everything, tcp_timer() does nothing. */
int tcp_freeze(struct tcp_conn *c, uint64_t now_ms);
/* Resume a frozen connection: every deadline moves by the time spent
 * frozen and the timestamp clock continues from its value at freeze. */
int tcp_thaw(struct tcp_conn *c, uint64_t now_ms);
/* A frozen connection imported from a replica (tcp_replica: taken while
 * another instance kept running, which then died) does not know where the
 * peer stands. After tcp_resync, tcp_thaw sends an ACK that the peer answers
 * (a duplicate, RFC 9293 3.10.7.4 / RFC 7323 5.3), repeated on the
 * retransmission timer with back-off, and the peer's first ACK sets SND.UNA
 * and RCV.NXT to its acknowledgement and sequence number if each lies within
 * TCP_RESYNC_LIMIT beyond the replica's (else the connection is reset, close
 * reason TCP_CLOSE_RESYNC). The send stream restarts at the new SND.UNA (the
 * application writes again from its stream offset: what it wrote before is
 * dropped), or, from a full replica (its ring came with it), sends on from
 * the ring what the peer does not hold (reset if the peer holds more);
 * received bytes skipped are counted in resync_gap. TCP_OK, or
 * TCP_ESTATE unless frozen and ESTABLISHED or CLOSE-WAIT (or SYN-RECEIVED:
 * a replica taken before the handshake completed needs no probe, the peer's
 * next segment completes it; only its timestamp clock moves; FIN-WAIT-2 the
 * same: all we sent was acknowledged, the peer's FIN is still to come; and
 * TIME-WAIT: the peer's FIN taken too, only that FIN again can come, should
 * our acknowledgement have been lost), or closing with
 * our FIN unacknowledged (FIN-WAIT-1, CLOSING, LAST-ACK: the FIN goes with
 * the unacknowledged bytes, the state goes back to ESTABLISHED or CLOSE-WAIT
 * and the application closes again once it has written). age_ms: how long
 * ago the replica was taken (at least); the timestamp clock resumes that much
 * further on, past every TSval the dead holder can have sent. wait_ms: how
 * long, beyond a retransmission timeout, the peer's bytes beyond the replica
 * are waited for before RCV.NXT skips them (rcv_resync_to), at most the
 * longest retransmission timeout: 0 for twice the age (see
 * rcv_resync_deadline); the longest when the holder never acknowledged what no
 * replica had (the peer sends it again, however late its backed-off timer). */
int tcp_resync(struct tcp_conn *c, uint32_t age_ms, uint32_t wait_ms);
/* What a program kept back from the wire (tcp_migrate's Socket.hold: the
 * segments were built, the timers ran) leaves now: timeouts that fired
 * meanwhile were no losses, so the retransmission back-off is cleared and the
 * timer restarts from now_ms. TCP_ESTATE when frozen. */
int tcp_release(struct tcp_conn *c, uint64_t now_ms);
/* The path got narrower (RFC 8201 5.2, RFC 9293 3.7.3): the send MSS goes down
 * to mss (never below TCP_MIN_MSS, never up).  Segments already sent stay as
 * they are; retransmissions and new data use the new size.  Returns whether
 * it changed. */
bool tcp_limit_mss(struct tcp_conn *c, uint32_t mss);

/* Internal consistency of a connection (0 when consistent, otherwise the
 * enum tcp_snap_status of the first fault, tcp_snapshot.h).  tcp_import
 * refuses any snapshot whose connection fails it. */
int tcp_conn_check(const struct tcp_conn *c);

/* Helpers the snapshot code and the tests share. */
uint32_t tcp_ts_now(const struct tcp_conn *c, uint64_t now_ms);
uint32_t tcp_smss(const struct tcp_conn *c); /* data bytes per segment */
uint16_t tcp_checksum(const uint8_t *src, const uint8_t *dst,
                      const uint8_t *segment, size_t len);

#endif /* TCP_MIGRATE_TCP_CONN_H */
