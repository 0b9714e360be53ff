// A job's whole run as a graph (dagre layout, SVG): the job, every ancestor and every
// descendant, each node coloured by its state, the job itself outlined, labels cut to fit
// their box with the whole label as the node's tooltip.

// Characters a node's label holds before it is cut with an ellipsis.
const LABEL_MAX_CHARS = 24;
const NODE_WIDTH = 170;
const NODE_HEIGHT = 40;
const ns = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const el = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

const cut = (s) => (s.length > LABEL_MAX_CHARS ? `${s.slice(0, LABEL_MAX_CHARS - 1)}…` : s);

export function drawDag(el, view) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 16, ranksep: 40, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = view.run && view.run.length ? view.run : [view.job, ...view.parents, ...view.children];
  const ids = new Set(nodes.map((n) => n.id));
  for (const n of nodes) g.setNode(n.id, { label: n, width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const n of nodes) for (const p of n.parents || []) if (ids.has(p)) g.setEdge(p, n.id);
  if (!view.run) {
    for (const p of view.parents) g.setEdge(p.id, view.job.id);
    for (const c of view.children) g.setEdge(view.job.id, c.id);
  }
  dagre.layout(g);
  const { width, height } = g.graph();
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "group" });
  // A group of links, not an image: an image's content is hidden from assistive technology,
  // and the links must stay reachable.
  const more = view.run_truncated ? " (the nearest shown)" : "";
  svg.setAttribute("aria-label", `The run: ${nodes.length} jobs${more}`);
  for (const e of g.edges()) svg.append(svgEl("polyline", { points: g.edge(e).points.map((p) => `${p.x},${p.y}`).join(" "), class: "edge" }));
  for (const id of g.nodes()) {
    const n = g.node(id);
    const full = `${n.label.key} · ${n.label.state}`;
    // The name starts with the text shown, cut or not, as a name must (WCAG 2.5.3).
    const a = svgEl("a", { href: `#/jobs/${id}`, "data-key": id, "data-state": n.label.state, "aria-label": `${cut(full)}: ${n.label.title} (${n.label.key}), ${n.label.state}` });
    const here = id === view.job.id ? " current" : "";
    const title = svgEl("title", {});
    title.textContent = `${n.label.title} (${n.label.key}): ${n.label.state}`;
    const rect = svgEl("rect", { x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width, height: n.height, rx: 6, class: `node state-${n.label.state}${here}` });
    const text = svgEl("text", { x: n.x, y: n.y + 4, "text-anchor": "middle" });
    text.textContent = cut(full);
    a.append(title, rect, text);
    svg.append(a);
  }
  el.replaceChildren(svg);
}
