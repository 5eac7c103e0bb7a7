"""A mobile node's choice among its uplinks (mip6.runtime.kernel.choose_uplink): the most
preferred one with its carrier, a usable address and a default router (RFC 3775 11.5.1)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from mip6.runtime.kernel import UplinkView, choose_uplink

HOME = IPv6Network("2001:db8:1::/64")
V1 = IPv6Address("2001:db8:3::10")
V2 = IPv6Address("2001:db8:4::10")
AT_HOME = IPv6Address("2001:db8:1::99")


def up(*addresses: IPv6Address, router: bool = True) -> UplinkView:
    return UplinkView(carrier=True, router=router, addresses=addresses)


@pytest.mark.parametrize(
    ("uplinks", "chosen"),
    [
        ([up(V1), up(V2)], (0, V1)),  # both usable: the preferred one
        ([UplinkView(False, True, (V1,)), up(V2)], (1, V2)),  # the preferred one unplugged
        ([up(), up(V2)], (1, V2)),  # its address gone
        ([up(V1, router=False), up(V2)], (1, V2)),  # its router gone
        ([up(V1, router=False), up(V2, router=False)], (0, V1)),  # no router anywhere
        ([up(V1, router=False)], (0, V1)),  # one interface, static: as before uplinks
        ([up(V1), up(AT_HOME, V2)], (0, V1)),  # the preferred one, though the other is home
        ([up(AT_HOME, V1), up(V2)], (0, None)),  # home on the preferred one
        ([up(), UplinkView(False, True, (V2,))], None),  # nowhere
        ([], None),
    ],
)
def test_uplinks_state_chooses_preferred_usable_uplink(
    uplinks: list[UplinkView], chosen: tuple[int, IPv6Address | None] | None
) -> None:
    assert choose_uplink(uplinks, HOME) == chosen
