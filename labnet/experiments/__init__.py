"""The seeds' experiments (SPEC-dserver 9; issue 17), one module each, run by
``labnet experiment NAME`` (:mod:`labnet.cli`), written by :mod:`labnet.experiments.report`.

Each builds its own lab, the seeds' testbed (:mod:`labnet.experiments.testbed`), measures on
the backend it is given and returns an :class:`~labnet.experiments.base.Outcome`: its points,
fits and a Markdown summary with the seeds' numbers beside ours.

On the ``sim`` backend (virtual time: exact, repeatable) every experiment but
``proxy-overhead`` runs (the proxy relays to a kernel server). On the ``netns`` backend (root:
real namespaces, ``mip6 run`` daemons, the hub emulating the latencies and shaping, kernel
clients) every one runs, with defaults sized for real seconds (``Experiment.netns_runs``, and
coarser sweeps where a point costs seconds): the testbed there is
:mod:`~labnet.experiments.netns_testbed`, handoffs of downloads timed from the hub's captures
:mod:`~labnet.experiments.netns_handoff`, failover's kills
:mod:`~labnet.experiments.netns_failover`; the other labs are built-in topologies (the
client farm, ``dserver``, ``dserver-proxy``). ``labnet experiment list`` gives each one's wall
time on each backend.
"""

from __future__ import annotations

import os

from labnet.experiments import (
    access_latency,
    buffer_sweep,
    contact_scalability,
    failover,
    handoff_phases,
    handoff_scalability,
    proxy_overhead,
    rr_in_advance,
    unresponsive_members,
)
from labnet.experiments.base import BackendUnavailable, Experiment, Outcome, Settings

EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        access_latency.EXPERIMENT,
        handoff_phases.EXPERIMENT,
        buffer_sweep.EXPERIMENT,
        rr_in_advance.EXPERIMENT,
        contact_scalability.EXPERIMENT,
        handoff_scalability.EXPERIMENT,
        proxy_overhead.EXPERIMENT,
        unresponsive_members.EXPERIMENT,
        failover.EXPERIMENT,
    )
}


def run(name: str, settings: Settings) -> Outcome:
    """Experiment ``name`` with ``settings``. KeyError for an unknown name; BackendUnavailable
    when it cannot run on ``settings.backend`` yet."""
    experiment = EXPERIMENTS[name]
    if settings.backend not in experiment.backends:
        raise BackendUnavailable(
            f"{name} cannot run on the {settings.backend} backend yet "
            f"(it runs on: {', '.join(experiment.backends)})"
        )
    if settings.backend == "netns" and os.geteuid() != 0:
        raise BackendUnavailable(
            f"{name} on the netns backend needs root (network namespaces, TUN devices)"
        )
    return experiment.run(settings)


__all__ = ["EXPERIMENTS", "BackendUnavailable", "Experiment", "Outcome", "Settings", "run"]
