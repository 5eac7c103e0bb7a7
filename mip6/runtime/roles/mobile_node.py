"""The mobile node role (RFC 3775 11): :class:`~mip6.roles.mobile_node.MobileNode`; its engine
registers from ``care_of_address`` when it starts, if one is configured."""

from __future__ import annotations

from typing import Any

from mip6.core.config import MobileNodeConfig
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.kernel import MobileNodeKernel
from mip6.runtime.roles.base import BuildContext, LabNode, Role


def build(options: dict[str, Any], context: BuildContext) -> MobileNode:
    options = dict(options)
    care_of = options.pop("care_of_address", None)
    home_registration = options.pop("home_registration", True)
    return MobileNode(
        config=MobileNodeConfig(**options),
        rng=context.rng,
        care_of_at_start=care_of,
        home_registration=home_registration,
        security=context.security,
    )


def lab_options(node: LabNode) -> dict[str, Any]:
    options = {"home_address": str(node.home_address), "home_agent": str(node.home_agent)}
    if node.care_of_address is not None:
        options["care_of_address"] = str(node.care_of_address)
    return options


ROLE = Role(
    name="mobile_node",
    options={
        "home_address": "address",
        "home_agent": "address",
        "care_of_address": "address",
        "home_registration_lifetime": "number",
        "route_optimization": "boolean",
        "home_registration": "boolean",
        "constants": "constants",
    },
    required=("home_address", "home_agent"),
    host_address="home_address",
    build=build,
    lab_options=lab_options,
    security="mobile_node",
    mobile=True,
    network_driver=MobileNodeKernel,
)
