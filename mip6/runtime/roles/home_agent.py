"""The home agent role (RFC 3775 10): :class:`~mip6.roles.home_agent.HomeAgent`, with the
correspondent role it composes configured in its own ``correspondent`` block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mip6.core.config import HomeAgentConfig
from mip6.roles.home_agent import HomeAgent
from mip6.runtime.kernel import HomeLinkProxy
from mip6.runtime.roles import correspondent
from mip6.runtime.roles.base import BuildContext, LabNode, OptionError, Role

HOME_LINK = "home"  # a link of this name, when configured, is the home link


def build(options: dict[str, Any], context: BuildContext) -> HomeAgent:
    options = dict(options)
    composed = correspondent.config(options.pop("correspondent", {}))
    home_link = HOME_LINK if HOME_LINK in context.links else None
    config = HomeAgentConfig(correspondent=composed, home_link=home_link, **options)
    return HomeAgent(config, context.rng, context.security)


def check(options: Mapping[str, Any]) -> None:
    if options.get("dad_retrans_timer", 1.0) <= 0:
        raise OptionError(
            "dad_retrans_timer", "must be more than 0 seconds (RFC 4861 RetransTimer)"
        )


def lab_options(node: LabNode) -> dict[str, Any]:
    return {
        "address": str(node.addresses[0]),
        "home_prefixes": [str(prefix) for prefix in node.prefixes],
    }


ROLE = Role(
    name="home_agent",
    options={
        "address": "address",
        "home_prefixes": "networks",
        "binding_cache_size": "integer",
        "max_home_registration_lifetime": "number",
        "allow_unprotected_registration": "boolean",
        "acl_default_allow": "boolean",
        "home_link_addresses": "addresses",
        "duplicate_address_detection": "boolean",
        "dad_retrans_timer": "number",
    },
    required=("address", "home_prefixes"),
    host_address="address",
    build=build,
    lab_options=lab_options,
    default_mode="router",
    sections={"correspondent": correspondent.OPTIONS},
    security="home_agent",
    owns_prefixes=True,
    network_driver=HomeLinkProxy,
    check=check,
)
