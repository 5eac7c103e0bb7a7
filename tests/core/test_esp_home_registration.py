"""ESP between mobile node and home agent inside the engines (RFC 3776): home registration
and return routability under ESP, unprotected or tampered registrations refused, and the
takeover a distributed server's backup performs with an imported SA."""

from __future__ import annotations

import os
import random
from ipaddress import IPv6Address

from mip6.core.config import HomeAgentConfig, MobileNodeConfig
from mip6.core.ipsec.policy import PairKeys, SaKeys, SecurityPolicyDatabase, home_registration_guard
from mip6.core.ipsec.sa import Algorithm, Direction
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire import protocols
from mip6.wire.walk import walk

from .scenario import CN, HA, HOME, HOME_PREFIX, VISITED

KEYS = PairKeys(
    binding_update=SaKeys(spi=0x1001, encryption_key=bytes(range(20))),
    binding_acknowledgement=SaKeys(spi=0x1002, encryption_key=bytes(range(1, 21))),
    home_test_init=SaKeys(spi=0x1003, encryption_key=bytes(range(2, 22))),
    home_test=SaKeys(spi=0x1004, encryption_key=bytes(range(3, 23))),
)


def database(role: str) -> SecurityPolicyDatabase:
    spd = SecurityPolicyDatabase(random_bytes=os.urandom)
    spd.add_pair(
        role=role, home_address=HOME, home_agent=HA, algorithm=Algorithm.AES_GCM_16, keys=KEYS
    )
    if role == "home_agent":
        for entry in home_registration_guard([HA]):
            spd.add_policy(entry)
    return spd


def lab(
    *, mn_security: bool = True
) -> tuple[MemoryNetwork, HomeAgent, MobileNode, CorrespondentNode]:
    net = MemoryNetwork(7, default_path=Path(latency=0.01))
    ha = HomeAgent(
        HomeAgentConfig(address=HA, home_prefixes=(HOME_PREFIX,)),
        random.Random(1),
        database("home_agent"),
    )
    mn = MobileNode(
        config=MobileNodeConfig(home_address=HOME, home_agent=HA),
        rng=random.Random(2),
        security=database("mobile_node") if mn_security else None,
    )
    cn = CorrespondentNode(rng=random.Random(3))
    for name, engine in (("ha", ha), ("mn", mn), ("cn", cn)):
        net.add(name, engine)
    net.route(HOME_PREFIX, "ha")
    net.route("2001:db8:2::/64", "cn")
    net.route(VISITED["visited1"][0], "mn")
    return net, ha, mn, cn


def esp_on_wire(net: MemoryNetwork, sender: str, receiver: str) -> list[bool]:
    return [
        walk(s.data).upper_protocol == protocols.ESP
        for s in net.trace
        if s.sender == sender and s.receiver == receiver
    ]


def test_home_registration_and_return_routability_under_esp() -> None:
    net, ha, _mn, cn = lab()
    net.call("mn", "move", VISITED["visited1"][1])
    net.run_for(1)
    assert ha.home_registrations()[0].care_of_address == VISITED["visited1"][1]
    assert esp_on_wire(net, "mn", "ha") == [True] and esp_on_wire(net, "ha", "mn") == [True]
    net.call("mn", "start_route_optimization", CN)
    net.run_for(1)
    assert cn.binding_cache.get(HOME) is not None
    assert ha.security.counters["out_protected_home_test"] == 1  # HoT tunnelled under ESP
    # HoTI (MN -> HA) and HoT (HA -> MN) travelled under ESP; the HA -> CN leg is plain
    assert esp_on_wire(net, "mn", "ha") == [True, True]
    assert esp_on_wire(net, "ha", "mn") == [True, True]
    assert esp_on_wire(net, "ha", "cn") == [False]


def test_unprotected_home_registration_refused_and_counted() -> None:
    net, ha, _mn, _ = lab(mn_security=False)
    net.call("mn", "move", VISITED["visited1"][1])
    net.run_for(5)
    assert ha.home_registrations() == []
    assert ha.counters["esp_drop_unprotected"] >= 1


def test_tampered_protected_registration_dropped() -> None:
    net, ha, _mn, _ = lab()
    net.path("mn", "ha", Path(latency=0.01, loss=1.0), both_ways=False)
    net.call("mn", "move", VISITED["visited1"][1])
    (bu,) = [s.data for s in net.trace if s.sender == "mn"]
    for position in (90, len(bu) - 1):  # inside the ciphertext, inside the ICV
        tampered = bytearray(bu)
        tampered[position] ^= 0x01
        net.inject("ha", bytes(tampered))
    net.run_for(0.5)
    assert ha.home_registrations() == [] and ha.counters["esp_drop_bad_icv"] == 2


def test_backup_with_imported_sa_takes_the_home_address_over() -> None:
    """ARCHITECTURE 5 / 8: the contact node's SA exported to a backup; the backup registers the
    same home address from its own care-of address, the HA's replay window accepts it, and the
    old holder's replayed Binding Update is refused."""
    net, ha, contact, _ = lab()
    net.call("mn", "move", VISITED["visited1"][1])
    net.run_for(1)
    old_bu = next(s.data for s in net.trace if s.sender == "mn")
    exported = [
        contact.security.sa(direction, spi).export(retire=True)
        for direction, spi in ((Direction.OUTBOUND, 0x1001), (Direction.INBOUND, 0x1002))
    ]
    backup_spd = database("mobile_node")
    for blob in exported:
        backup_spd.import_sa(blob)
    backup = MobileNode(
        config=MobileNodeConfig(home_address=HOME, home_agent=HA),
        rng=random.Random(9),
        security=backup_spd,
    )
    net.add("backup", backup)
    net.route(VISITED["visited2"][0], "backup")
    net.call("backup", "move", VISITED["visited2"][1])
    net.run_for(1)
    assert ha.home_registrations()[0].care_of_address == VISITED["visited2"][1]
    net.inject("ha", old_bu)
    net.run_for(0.5)
    assert ha.counters["esp_drop_replayed"] == 1
    assert ha.home_registrations()[0].care_of_address == VISITED["visited2"][1]


def test_node_without_the_sa_cannot_take_over() -> None:
    net, ha, _contact, _ = lab()
    net.call("mn", "move", VISITED["visited1"][1])
    net.run_for(1)
    other_keys = PairKeys(
        binding_update=SaKeys(spi=0x1001, encryption_key=bytes(20)),
        binding_acknowledgement=KEYS.binding_acknowledgement,
        home_test_init=KEYS.home_test_init,
        home_test=KEYS.home_test,
    )
    spd = SecurityPolicyDatabase(random_bytes=os.urandom)
    spd.add_pair(
        role="mobile_node",
        home_address=HOME,
        home_agent=HA,
        algorithm=Algorithm.AES_GCM_16,
        keys=other_keys,
    )
    intruder = MobileNode(
        config=MobileNodeConfig(home_address=HOME, home_agent=HA),
        rng=random.Random(5),
        security=spd,
    )
    net.add("intruder", intruder)
    net.route(VISITED["visited2"][0], "intruder")
    net.call("intruder", "move", IPv6Address("2001:db8:4::66"))
    net.run_for(3)
    assert ha.home_registrations()[0].care_of_address == VISITED["visited1"][1]
    assert ha.counters["esp_drop_bad_icv"] >= 1
