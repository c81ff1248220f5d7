"""The server-drawn charts in a real browser: drawn where the numbers say, named for assistive
technology, and legible at 200% zoom without any script."""

from __future__ import annotations

from datetime import datetime, timezone

from micropay.charts import Series, earnings_chart, progress_bar
from micropay.units import format_amount

T0 = int(datetime(2026, 11, 18, 20, 13, tzinfo=timezone.utc).timestamp())
MILLI = 10**15


def page(tmp_path):
    def eth(value):
        return format_amount(value, 18, "ETH")

    chart = earnings_chart([Series("0xAbC1…1234", ((T0, 5 * MILLI), (T0 + 3600, 8 * MILLI), (T0 + 7200, 15 * MILLI))),
                            Series("settled", ((T0 + 5400, 8 * MILLI),))], show=eth, title="Earnings")
    bar = progress_bar(3, 5, label="Brand refresh", show=str)
    path = tmp_path / "chart.html"
    path.write_text(f'<!doctype html><html lang="en"><meta charset="utf-8"><title>charts</title>'
                    f'<body><main style="max-width:40rem">{chart}{bar}</main></body></html>', encoding="utf-8")
    return path.as_uri()


def test_the_chart_is_drawn_as_its_numbers_say_and_is_named(browser, tmp_path, screenshots):
    browser.get(page(tmp_path))
    svg = browser.find_element("css selector", "svg.chart")
    assert svg.size["width"] > 300 and svg.size["height"] > 100
    name = browser.execute_script(
        "const s = arguments[0]; return s.getAttribute('aria-labelledby').split(' ')"
        ".map(id => document.getElementById(id).textContent).join(' | ')", svg)
    assert name == "Earnings | 0xAbC1…1234: 0.015 ETH; settled: 0.008 ETH"
    dots = browser.find_elements("css selector", "svg.chart circle")
    boxes = [(d.rect["x"], d.rect["y"]) for d in dots[:3]]
    assert boxes[0][0] < boxes[1][0] < boxes[2][0]  # later is further right
    assert boxes[0][1] > boxes[1][1] > boxes[2][1]  # more is higher up
    bar = browser.find_element("css selector", "svg.bar rect.done")
    whole = browser.find_element("css selector", "svg.bar")
    assert abs(bar.size["width"] / whole.size["width"] - 0.6) < 0.01
    browser.save_screenshot(str(screenshots / "chart.png"))


def test_at_200_percent_zoom_the_chart_still_fits_the_page(browser, tmp_path, screenshots):
    browser.get(page(tmp_path))
    browser.execute_script("document.body.style.zoom = '200%'")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0  # no horizontal scrolling: the SVG scales with its container
    browser.save_screenshot(str(screenshots / "chart-200.png"))
