"""SVG charts: well-formed, labelled for screen readers, exact for uint256 amounts, escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micropay.charts import Series, earnings_chart, progress_bar
from micropay.errors import MicropayValueError
from micropay.units import format_amount

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1795032780  # 2026-11-18 20:13 UTC


def eth(value: int) -> str:
    return format_amount(value, 18, "ETH")


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything not well-formed


def circles(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}circle")


def test_a_chart_says_in_words_what_it_shows_and_labels_every_point():
    received = Series("client 0xAbC1…1234", ((T0, 5 * 10**15), (T0 + 3600, 8 * 10**15)))
    settled = Series("settled", ((T0 + 7200, 8 * 10**15),))
    root = parse(earnings_chart([received, settled], show=eth, title="Earnings this week"))
    assert root.get("role") == "img" and root.get("aria-labelledby") == "earnings-title earnings-desc"
    assert root.find(f"{SVG}title").text == "Earnings this week"
    assert root.find(f"{SVG}desc").text == "client 0xAbC1…1234: 0.008 ETH; settled: 0.008 ETH"
    titles = [c.find(f"{SVG}title").text for c in circles(root)]
    assert titles == ["client 0xAbC1…1234: 0.005 ETH on 2026-11-18 20:13 UTC",
                      "client 0xAbC1…1234: 0.008 ETH on 2026-11-18 21:13 UTC",
                      "settled: 0.008 ETH on 2026-11-18 22:13 UTC"]
    assert [c.get("data-time") for c in circles(root)] == [str(T0), str(T0 + 3600), str(T0 + 7200)]
    paths = root.findall(f".//{SVG}path")
    assert paths[0].get("stroke-dasharray") is None and paths[1].get("stroke-dasharray")  # not colour alone
    legend = root.findall(f".//{SVG}g[@class='legend']")
    assert [g.find(f"{SVG}text").text for g in legend] == ["client 0xAbC1…1234", "settled"]
    long = parse(earnings_chart([Series("0x45dE2eDdbE199F4FE133B728A40e8ed516D1B015", ((T0, 1),))], show=str,
                                title="t"))
    assert long.find(f".//{SVG}g[@class='legend']/{SVG}text").text == "0x45dE2e…516D1B015"
    assert long.find(f".//{SVG}g[@class='series']").get("data-series") == "0x45dE2eDdbE199F4FE133B728A40e8ed516D1B015"
    assert [g.find(f"{SVG}line").get("stroke-dasharray") for g in legend] == [None, paths[1].get("stroke-dasharray")]


def test_points_are_placed_exactly_on_the_scale_of_the_largest_amount():
    chart = parse(earnings_chart([Series("a", ((T0, 0), (T0 + 100, 50), (T0 + 200, 100)))], show=str, title="t",
                                 width=400, height=200))
    # plot: x from 96 to 384 (288 wide), y from 16 to 140 (124 high)
    assert [(int(c.get("cx")), int(c.get("cy"))) for c in circles(chart)] == [(96, 140), (240, 78), (384, 16)]
    assert chart.find(f".//{SVG}path").get("d") == "M96,140H240V78H384V16H384"
    assert [t.text for t in chart.findall(f".//{SVG}text") if "tick" in t.get("class")][:3] == ["0", "50", "100"]


@given(st.lists(st.integers(0, 2**256 - 1), min_size=1, max_size=20))
def test_any_uint256_amounts_stay_inside_the_plot(amounts):
    points = tuple((T0 + i, a) for i, a in enumerate(sorted(amounts)))
    root = parse(earnings_chart([Series("s", points)], show=str, title="t", width=400, height=200))
    ys = [int(c.get("cy")) for c in circles(root)]
    assert all(16 <= y <= 140 for y in ys) and ys == sorted(ys, reverse=True)
    assert [int(c.get("data-amount")) for c in circles(root)] == [a for _, a in points]


def test_hostile_labels_are_text_not_markup():
    root = parse(earnings_chart([Series('<script>alert(1)</script>" onload="x', ((T0, 1),))], show=str,
                                title="<b>t</b>", chart_id='x" onclick="y'))
    assert root.find(f"{SVG}title").text == "<b>t</b>"
    assert root.get("onclick") is None and root.get("id") == 'x" onclick="y'
    assert not root.findall(f".//{SVG}script")
    assert root.find(f".//{SVG}g[@class='series']").get("data-series") == '<script>alert(1)</script>" onload="x'


def test_no_points_is_said_and_drawn_as_such():
    root = parse(earnings_chart([], show=eth, title="Earnings"))
    assert root.find(f"{SVG}desc").text == "no payments yet" and not circles(root)


def test_time_labels_follow_the_given_time_zone():
    root = parse(earnings_chart([Series("a", ((T0, 1), (T0 + 60, 2)))], show=str, title="t",
                                tz=timezone(timedelta(hours=2), "CEST")))
    times = [t.text for t in root.findall(f".//{SVG}text") if "time" in t.get("class")]
    assert times == ["2026-11-18 22:13 CEST", "2026-11-18 22:14 CEST"]
    instant = parse(earnings_chart([Series("a", ((T0, 1), (T0, 2)))], show=str, title="t"))
    assert [t.text for t in instant.findall(f".//{SVG}text") if "time" in t.get("class")] == [
        "2026-11-18 20:13 UTC"]  # one moment: both ends would overlap, so it is written once


def test_series_must_be_in_time_order_with_whole_amounts_and_charts_big_enough():
    with pytest.raises(MicropayValueError):
        Series("a", ((T0 + 1, 1), (T0, 2)))
    with pytest.raises(MicropayValueError):
        Series("a", ((T0, -1),))
    with pytest.raises(MicropayValueError):
        earnings_chart([], show=str, title="t", width=100)


@pytest.mark.parametrize(("done", "total", "width", "share"), [
    (0, 10, 0, "0%"), (3, 10, 96, "30%"), (10, 10, 320, "100%"), (12, 10, 320, "120%"), (0, 0, 0, "nothing planned"),
    (2**255, 2**256 - 1, 160, "50%"),
])
def test_a_progress_bar_fills_its_share_and_says_it(done, total, width, share):
    root = parse(progress_bar(done, total, label="Brand refresh", show=str))
    assert int(root.find(f".//{SVG}rect[@class='done']").get("width")) == width
    assert root.find(f"{SVG}desc").text == f"Brand refresh: {done} of {total} ({share})"
    with pytest.raises(MicropayValueError):
        progress_bar(-1, 1, label="x", show=str)
