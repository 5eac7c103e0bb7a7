/*
 * tcp_snapshot.h: a frozen connection as portable bytes, and back.
 *
 * Format, version 1 (all multi-byte integers little-endian; "varint" is
 * unsigned LEB128 in its shortest form, "zigzag" a signed 32-bit difference
 * mapped to unsigned as (d << 1) ^ (d >> 31) then written as a varint):
 *
 *   offset  size  field
 *   0       4     magic "TCPM"
 *   4       1     version (1)
 *   5       1     format flags: bit 0 = the send ring's bytes are included;
 *                 other bits zero
 *   6       4     total length of the snapshot in bytes, CRC included
 *   10      ...   body (below)
 *   len-4   4     CRC-32 (IEEE 802.3, as zlib.crc32) of bytes [0, len-4)
 *
 * Body:
 *   16 local address, 16 remote address, u16 local port, u16 remote port,
 *   u8 state (SYN-SENT .. TIME-WAIT), u8 flags (the TCP_CF_EXPORTED bits),
 *   u8 window scales (low nibble the peer's shift, high nibble ours),
 *   u8 congestion control algorithm, u8 dupacks, u8 backoff, u8 keepalive
 *   probes, u8 segments owed (TCP_PEND_* except RST),
 *   u32 SND.UNA, u32 RCV.NXT,
 *   varint snd_off, varint rcv_off (stream offsets of SND.UNA and RCV.NXT),
 *   varint SND.NXT-SND.UNA, varint SND.MAX-SND.UNA, varint SND.WND,
 *   varint MAX.SND.WND-SND.WND, zigzag SND.WL1-RCV.NXT,
 *   zigzag SND.WL2-SND.UNA, varint RCV.ADV-RCV.NXT, varint send MSS,
 *   varint receive MSS, varint srtt, varint rttvar, varint rto (ms),
 *   varint cwnd, varint ssthresh, the algorithm's state words as varints
 *   (NewReno: 1, the bytes counted in congestion avoidance),
 *   zigzag recover-SND.UNA,
 *   [flag IN_RECOVERY: varint snd_rxt-SND.UNA]
 *   [flag TS_OK: u32 TS.Recent, u32 TSval at the freeze,
 *                varint RCV.NXT-Last.ACK.sent]
 *   u8 armed timers (bit 0 retransmit, 1 delayed ACK, 2 persist,
 *   3 keepalive, 4 TIME-WAIT), then per armed timer a varint: milliseconds
 *   from the freeze to the deadline (0 if it had passed);
 *   u8 SACK scoreboard blocks, per block varint start-SND.UNA, varint length;
 *   varint send bytes present, varint send bytes missing (after the present
 *   ones, to be written again by the application), varint send bytes to skip
 *   (written again by the application but acknowledged meanwhile), the
 *   present bytes;
 *   varint readable received bytes, the bytes; u8 out-of-order intervals,
 *   per interval varint offset after the readable bytes, varint length, the
 *   bytes.
 *
 * Every field is validated on import: its range, and the connection it
 * describes by tcp_conn_check(); varints must be in their shortest form, so
 * a snapshot that imports re-exports to the same bytes.
 *
 * Times are relative to the freeze, so the snapshot moves between hosts whose
 * clocks differ; tcp_thaw() puts them on the importing host's clock.  Not
 * exported, and reset on import: the RTT sample in progress (timestamps make
 * the next one), the challenge ACK throttle, the PAWS idle clock (restarted
 * at thaw), a pending RST reply (a frozen connection never sends one), which
 * out-of-order block arrived last (the order of SACK blocks) and the count of
 * segments received since the last ACK.  ISS and IRS are derived.
 *
 * With include_unacked == 0 the snapshot leaves out the send ring's bytes
 * (unacknowledged and unsent alike: all become "missing"), the SACK
 * scoreboard (a sender may forget it, RFC 2018 8) and the out-of-order
 * received bytes (a receiver may discard SACKed data, RFC 2018 8): its size
 * no longer depends on how full the send ring is.  snd_off is then the stream
 * offset from which the application writes its bytes again after import.
 * The readable received bytes are always included (they are acknowledged):
 * read them before the export to keep the snapshot small.
 */
#ifndef TCP_MIGRATE_TCP_SNAPSHOT_H
#define TCP_MIGRATE_TCP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "tcp_conn.h"

#define TCP_SNAP_VERSION 1
#define TCP_SNAP_HEADER_LEN 10
#define TCP_SNAP_TRAILER_LEN 4
#define TCP_SNAP_FORMAT_UNACKED 0x01

/* Errors of tcp_export, tcp_import and tcp_conn_check: one per fault. */
enum tcp_snap_status {
    TCP_SNAP_OK = 0,
    TCP_SNAP_EINVAL = -1,     /* NULL argument or uninitialized connection */
    TCP_SNAP_ENOTFROZEN = -2, /* export of a connection that is not frozen */
    TCP_SNAP_ENOSPC = -3,     /* output buffer too small (tcp_export_size) */
    TCP_SNAP_ERING = -4,      /* the importing rings are too small */
    TCP_SNAP_ETRUNCATED = -5, /* shorter than its header or its length */
    TCP_SNAP_EMAGIC = -6,
    TCP_SNAP_EVERSION = -7,
    TCP_SNAP_ELENGTH = -8,    /* length field is not the snapshot's length */
    TCP_SNAP_ECRC = -9,
    TCP_SNAP_EVARINT = -10,   /* a varint runs past the body, is not in its
                                 shortest form, or exceeds its field */
    TCP_SNAP_EFLAGS = -11,    /* unknown format or connection flag bits */
    TCP_SNAP_ESTATE = -12,    /* state not exportable, or flags that
                                 contradict it */
    TCP_SNAP_EOPTIONS = -13,  /* window scale, MSS, timestamps */
    TCP_SNAP_ESEQUENCE = -14, /* sequence numbers inconsistent */
    TCP_SNAP_EWINDOW = -15,
    TCP_SNAP_ERTT = -16,
    TCP_SNAP_ECONGESTION = -17,
    TCP_SNAP_ETIMER = -18,
    TCP_SNAP_ESACK = -19,
    TCP_SNAP_EDATA = -20,     /* buffered byte counts or intervals */
    TCP_SNAP_ETRAILING = -21, /* bytes left after the last field */
};

/* CRC-32 (reflected polynomial 0xEDB88320, as zlib.crc32): pass 0 as crc to
 * start, the previous result to continue. */
uint32_t tcp_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Exact size tcp_export would write, or a negative enum tcp_snap_status. */
int64_t tcp_export_size(const struct tcp_conn *c, int include_unacked);
/* Writes the snapshot of a frozen connection; its length or a negative
 * enum tcp_snap_status.  The connection is not changed. */
int64_t tcp_export(const struct tcp_conn *c, int include_unacked,
                   uint8_t *out, size_t cap);

/* A replica of a running (not frozen) connection, taken as if it were frozen
 * at now_ms and exported with or without its unacknowledged bytes (as
 * tcp_export): another member keeps it, and after this one dies imports it,
 * calls tcp_resync and thaws it. The connection is not changed. Sizes and
 * errors as tcp_export_size and tcp_export. */
int64_t tcp_replica_size(const struct tcp_conn *c, uint64_t now_ms,
                         int include_unacked);
int64_t tcp_replica(const struct tcp_conn *c, uint64_t now_ms,
                    int include_unacked, uint8_t *out, size_t cap);
/*
 * Validates a snapshot completely and, only if all of it is valid, replaces
 * the state of `c` (initialized by tcp_conn_init: its settings and rings are
 * kept, its rings emptied and refilled) with a frozen connection.  Returns
 * TCP_SNAP_OK or the fault; on a fault `c` is unchanged.
 */
int tcp_import(const uint8_t *blob, size_t len, struct tcp_conn *c);

#endif /* TCP_MIGRATE_TCP_SNAPSHOT_H */
