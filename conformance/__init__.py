"""conformance: an RFC 3775 conformance suite that tests an implementation over a link.

Cases (:mod:`conformance.case`) are declarative: the RFC sentence, preconditions, a stimulus
and the expected packets or silence. The tester (:mod:`conformance.tester`) speaks to the
implementation under test only through packets (scapy, with its own checksums and return
routability math), over a :class:`~conformance.transport.Transport`; the IUT control hook
(:mod:`conformance.iut`) asks it to act when a case needs it. ``python -m conformance``
runs the suite and the mutation run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.case import Case

__all__ = ["ALL_CASES"]


def __getattr__(name: str) -> Any:
    if name == "ALL_CASES":
        from conformance.cases_cn import CASES as CN
        from conformance.cases_ha import CASES as HA
        from conformance.cases_mn import CASES as MN

        cases: tuple[Case, ...] = CN + HA + MN
        return cases
    raise AttributeError(name)
