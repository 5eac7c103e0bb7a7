"""Sequence charts of a simulated distributed-server run, from the per-link captures the
simulator writes (as the netns hub does): lifelines, the handoff's member-channel messages
opened with the lab's group key, the HoTI relayed by the contact node, and every Mobility
Header message cross-checked against tshark's decode of the same files."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labnet import cli, demo_dserver
from labnet.chart import topology_names
from labnet.nodes import daemon_config, dump
from labnet.sim_capture import write_link_captures
from mip6 import cli as mip6_cli
from mip6.chart.model import Chart, Message
from mip6.chart.read import chart_captures
from tests.chart import oracle

SVG = "{http://www.w3.org/2000/svg}"
LINKS = ("ha", "m1", "m2", "m3", "client")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    played = demo_dserver.play(1)
    directory = tmp_path_factory.mktemp("captures")
    write_link_captures(played.lab.net.trace, directory)
    return directory, played.lab.secret


def chart_of(run: tuple[Path, bytes], key: bytes | None) -> Chart:
    directory, _ = run
    paths = sorted(directory.glob("*.pcap"))
    drawn = chart_captures(paths, topology_names(demo_dserver.topology()), key)
    return drawn


def messages(chart: Chart) -> list[Message]:
    return [item for item in chart.items if isinstance(item, Message)]


def arrows(chart: Chart, pattern: str) -> list[tuple[str, str, str]]:
    return [(m.sender, m.receiver, m.text) for m in messages(chart) if re.search(pattern, m.text)]


def test_one_lifeline_per_node_in_topology_order(run: tuple[Path, bytes]) -> None:
    assert chart_of(run, None).lifelines == LINKS


def test_handoff_messages_named_with_group_key(run: tuple[Path, bytes]) -> None:
    chart = chart_of(run, run[1])
    handoff = arrows(chart, r"^(channel confirm, )?(PREPARE|PREPARED|INIT|DONE) ")
    steps = [
        (sender, receiver, re.sub(r".*?(PREPARED|PREPARE|INIT|DONE).*", r"\1", text))
        for sender, receiver, text in handoff
    ]
    assert steps == [
        ("m1", "m2", "PREPARE"),
        ("m2", "m1", "PREPARED"),
        ("m1", "m2", "INIT"),
        ("m2", "m1", "DONE"),
        ("m2", "m3", "PREPARE"),
        ("m3", "m2", "PREPARED"),
        ("m2", "m3", "INIT"),
        ("m3", "m2", "DONE"),
    ]
    assert not chart.notes


def test_acceptor_binding_update_uses_init_sequence(run: tuple[Path, bytes]) -> None:
    chart = chart_of(run, run[1])
    for acceptor in ("m2", "m3"):
        (init,) = [t for s, r, t in arrows(chart, r"INIT ") if r == acceptor]
        sequence = re.search(r" seq (\d+),", init)
        assert sequence is not None
        updates = [(s, r) for s, r, _ in arrows(chart, rf"^BU seq {sequence[1]} ")]
        assert updates == [(acceptor, "client")]


def test_home_test_init_relayed_through_contact_node(run: tuple[Path, bytes]) -> None:
    """m2's HoTI goes m2 -> m1 (the contact node) -> ha -> client, its HoT back the same way."""
    chart = chart_of(run, run[1])
    (first,) = [t for s, r, t in arrows(chart, r"^tunnel: HoTI") if (s, r) == ("m2", "m1")]
    cookie = first.split()[-1]
    hops = [(s, r) for s, r, _ in arrows(chart, rf"Ho(TI|T) cookie {cookie}")]
    assert hops == [
        ("m2", "m1"),
        ("m1", "ha"),
        ("ha", "client"),
        ("client", "ha"),
        ("ha", "m1"),
        ("m1", "m2"),
    ]


def test_without_group_key_frames_shown_encrypted_and_said(run: tuple[Path, bytes]) -> None:
    chart = chart_of(run, None)
    assert not arrows(chart, r"INIT|DONE")
    assert arrows(chart, r"channel frame \d+, \d+ bytes \(encrypted\)")
    assert "give the group key" in chart.notes[0]


def test_data_collapsed_into_runs(run: tuple[Path, bytes]) -> None:
    chart = chart_of(run, run[1])
    assert len(chart.items) < 150  # over 1,000 packets
    text = " ".join(item.text for item in chart.items)
    assert re.search(r"TCP route-optimized: \d+ segments, [\d.]+ kB", text)


def test_mobility_labels_match_tshark(run: tuple[Path, bytes], tshark: str) -> None:
    """Every MH message tshark decodes (on the sender's link and again on the receiver's) is
    one arrow of ours with the same type and sequence number or cookie, and no arrow of ours
    lacks it."""
    directory, key = run
    mine = oracle.ours(chart_of(run, key))
    assert len(mine) > 40
    links = {link: directory / f"{link}.pcap" for link in LINKS}
    assert sorted(mine) == sorted(oracle.theirs(links, tshark))


def test_svg_well_formed_with_lifelines_and_handoff(
    run: tuple[Path, bytes], tmp_path: Path
) -> None:
    directory, key = run
    member = demo_dserver.topology().nodes["m1"]
    config = tmp_path / "m1.yaml"
    config.write_text(
        dump(
            daemon_config(
                demo_dserver.topology(),
                member,
                links={"network": {"type": "memory"}},
                lab_secret=key,
            )
        )
    )
    out = tmp_path / "chart.svg"
    argv = [
        "chart",
        str(directory),
        "--topology",
        "dserver",
        "--out",
        str(out),
        "--group-key-file",
        str(config),
    ]
    assert cli.main(argv) == 0
    root = ET.parse(out).getroot()
    lifelines = root.find(f"{SVG}g[@class='lifelines']")
    assert lifelines is not None
    assert [t.text for t in lifelines.iter(f"{SVG}text")] == list(LINKS)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert sum(t.startswith("INIT #") for t in texts) == 2
    assert any(t.startswith("tunnel: HoTI cookie") for t in texts)


def test_decode_chart_names_and_svg(
    run: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _ = run
    topology = demo_dserver.topology()
    names = [f"--name={spec.addresses[0]}={name}" for name, spec in topology.nodes.items()]
    out = tmp_path / "chart.svg"
    paths = [str(directory / f"{link}.pcap") for link in LINKS]
    assert mip6_cli.main(["decode", "--chart", *paths, *names, "--svg", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == list(LINKS)
    assert "BU seq" in lines[1] and lines[1].index("<") < lines[1].index("|", 20)
    assert ET.parse(out).getroot().tag == f"{SVG}svg"


def test_decode_chart_bad_name_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert mip6_cli.main(["decode", "--chart", "--name", "m1"]) == 2
    assert "--name 'm1'" in capsys.readouterr().err


def test_decode_chart_group_key_from_non_member_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = demo_dserver.topology()
    config = tmp_path / "ha.yaml"
    config.write_text(
        dump(daemon_config(topology, topology.nodes["ha"], links={"network": {"type": "memory"}}))
    )
    assert mip6_cli.main(["decode", "--chart", "--group-key-file", str(config)]) == 1
    assert "not a member: no group_key" in capsys.readouterr().err


def test_demo_writes_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "roaming.txt"
    assert cli.main(["demo", "--chart", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    chart = out.read_text().splitlines()
    assert chart[0].split() == ["ha", "cn", "mn"]
    assert any(line.endswith("BU seq") is False and "(delete)" in line for line in chart)


def test_bench_chart_reports_chart_and_decode_same_run() -> None:
    from labnet.bench import chart

    results = chart.run(seconds=0.2)
    assert results["records"] > 1000  # every packet twice: its sender's link and receiver's
    assert 0 < results["chart_items"] < results["records"] / 10
    assert results["chart_records_per_s"] > 0 and results["decode_records_per_s"] > 0


def test_lab_directory_gives_captures_and_group_key(
    run: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A netns lab's directory as ``labnet down`` leaves it: ``pcap/`` and the nodes'
    configurations, a member's holding the group key (the home agent's is passed over)."""
    directory, key = run
    lab = tmp_path / "lab"
    shutil.copytree(directory, lab / "pcap")
    topology = demo_dserver.topology()
    for name in ("ha", "m2"):
        config = daemon_config(
            topology, topology.nodes[name], links={"network": {"type": "memory"}}, lab_secret=key
        )
        (lab / f"{name}.yaml").write_text(dump(config))
    assert cli.main(["chart", str(lab), "--topology", "dserver"]) == 0
    out = capsys.readouterr().out
    assert out.count(" INIT #") == 2 and "note:" not in out
