"""Reading the pictures lrc writes (plot/svg_chart.h): parsed as XML, panels and series by name."""
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def parse(path):
    root = ET.parse(path).getroot()  # raises on anything that is not well-formed XML
    assert root.tag == NS + "svg"
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0
    return root


def panels(root):
    return {p.get("data-title"): p for p in root.iter(NS + "g") if p.get("class") == "panel"}


def series(panel):
    """name -> number of points drawn (checked against the group's data-points)."""
    out = {}
    for g in panel.iter(NS + "g"):
        if g.get("class") == "series":
            pts = [c for c in g.iter(NS + "circle") if c.get("class") == "point"]
            assert int(g.get("data-points")) == len(pts)
            out[g.get("data-name")] = len(pts)
    return out


def levels(panel):
    return {g.get("data-name"): float(g.get("data-value"))
            for g in panel.iter(NS + "g") if g.get("class") == "level"}


def bars(panel):
    """label -> (value, number of per-seed points)."""
    return {g.get("data-label"): (float(g.get("data-value")),
                                  sum(1 for c in g.iter(NS + "circle") if c.get("class") == "point"))
            for g in panel.iter(NS + "g") if g.get("class") == "bar"}
