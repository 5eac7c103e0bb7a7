"""ESP (RFC 4303) and the RFC 3776 policy that protects Mobile IPv6 signalling between a
mobile node and its home agent. Sans-I/O: bytes in, bytes out, randomness injected, no clock.

Modules: :mod:`.sa` (Security Associations, replay window, export/import), :mod:`.transforms`
(AES-GCM, AES-CBC + HMAC-SHA1-96), :mod:`.esp` (protect / verify whole IPv6 packets, transport
and tunnel mode), :mod:`.policy` (the SPD as data, the output and input steps of a node's data
path), :mod:`.config` (manual keys from the node's YAML), :mod:`.errors` (one class per cause).

Compliance (tests in tests/ipsec/):

Implemented
  - RFC 4303 2, 3.3, 3.4: ESP header, IV, payload, default padding 1, 2, 3... checked on
    receipt, Pad Length, Next Header, ICV; transport mode (3.1.1) with the Home Address option's
    Destination Options header and the type 2 routing header kept outside (RFC 3776 3.1), tunnel
    mode (3.1.2, RFC 3776 3.2) -- test_esp.py, test_tshark_esp.py
  - RFC 4303 3.3.3: 32-bit Sequence Numbers starting at 1 that never cycle -- test_sa.py
  - RFC 4303 3.4.3: 64-packet anti-replay window, checked before and updated after the ICV --
    test_sa.py, test_esp.py
  - RFC 4303 2.6: Next Header 59 dummy packets generated on request and discarded without
    error on receipt -- test_esp.py
  - RFC 4106: AES-GCM, 16-octet ICV, 128/192/256-bit keys with a 4-octet salt, nonce salt||IV,
    AAD SPI||Sequence Number -- test_esp.py (checked against an independent GCM in the test)
  - RFC 3602 + RFC 2404: AES-CBC with random IV, HMAC-SHA1-96 over header, IV and ciphertext --
    test_esp.py (RFC 3602 and RFC 2202 vectors, independent computation)
  - RFC 4301 5.1 / 5.2: ordered SPD, PROTECT / BYPASS / DISCARD, inbound selector check after
    decryption, unprotected traffic that must be protected dropped -- test_policy.py
  - RFC 3776 4.1, 5.2.1, 5.2.2, 5.2.4: BU/BA transport mode, HoTI/HoT tunnel mode, optionally
    all tunnelled traffic; manual keys -- test_policy.py, test_config.py
  - SA export/import (versioned, checksummed) with continuing Sequence Numbers for the
    distributed server's backups (ARCHITECTURE 5, 8) -- test_sa.py, test_policy.py

Not implemented
  - Extended Sequence Numbers (RFC 4303 2.2.1), so an SA carries at most 2**32 - 1 packets
  - IKE / IKEv2 (RFC 3776 4.4, RFC 4877) and the K bit; keys are manual only
  - AH; ESP without confidentiality (NULL encryption); AES-GCM with 8 or 12-octet ICVs
  - TFC padding (RFC 4303 2.4, 2.7) and a schedule for dummy packets (they are made on request)
  - protection of Mobile Prefix Solicitation/Advertisement (RFC 3776 3.3, 5.2.3)

Deviations and choices
  - AES-GCM IV = 32-bit per-holder random epoch || 32-bit Sequence Number (RFC 4106 3.1 asks
    only for uniqueness; the epoch keeps an exporter and importer of one SA apart)
  - Selectors may also test the Binding Update H bit (RFC 4301 selectors cannot); a home agent
    uses it to drop every unprotected home registration (RFC 3775 10.3.1)
  - ESP does not cover the IPv6 header: the care-of address in the Source Address is not
    protected (RFC 3775 11.7.1 asks the mobile node to carry it in an Alternate Care-of Address
    option for this reason)
"""

from mip6.core.ipsec.errors import (
    BadIcv,
    BadPadding,
    CannotProtect,
    DummyPacket,
    EspError,
    EspLocalError,
    Malformed,
    PolicyViolation,
    Replayed,
    SaRetired,
    SequenceExhausted,
    Truncated,
    UnknownSpi,
    Unprotected,
)
from mip6.core.ipsec.esp import Opened, dummy_packet, locate, protect, protect_tunnel, verify
from mip6.core.ipsec.policy import (
    Accepted,
    Dropped,
    PairKeys,
    PolicyAction,
    PolicyEntry,
    SaKeys,
    SecurityPolicyDatabase,
    home_registration_guard,
    rfc3776_entries,
)
from mip6.core.ipsec.sa import (
    REPLAY_WINDOW,
    Algorithm,
    Direction,
    Mode,
    SaImportError,
    SaParameters,
    SecurityAssociation,
    Selector,
)

__all__ = [
    "REPLAY_WINDOW",
    "Accepted",
    "Algorithm",
    "BadIcv",
    "BadPadding",
    "CannotProtect",
    "Direction",
    "Dropped",
    "DummyPacket",
    "EspError",
    "EspLocalError",
    "Malformed",
    "Mode",
    "Opened",
    "PairKeys",
    "PolicyAction",
    "PolicyEntry",
    "PolicyViolation",
    "Replayed",
    "SaImportError",
    "SaKeys",
    "SaParameters",
    "SaRetired",
    "SecurityAssociation",
    "SecurityPolicyDatabase",
    "Selector",
    "SequenceExhausted",
    "Truncated",
    "UnknownSpi",
    "Unprotected",
    "dummy_packet",
    "home_registration_guard",
    "locate",
    "protect",
    "protect_tunnel",
    "rfc3776_entries",
    "verify",
]
