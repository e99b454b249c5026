// The resource tree of an application drawn as a graph: the application on
// the left, its objects, then what they own (ReplicaSets, then Pods), each
// node with its sync and health. Nodes are positioned HTML (focusable
// buttons and links); the edges are one SVG behind them. No library.
'use strict';

(() => {
  const { el, svg, SYNC, HEALTH } = window.Plumb;
  const COL = 250;   // horizontal distance between levels
  const W = 210;     // node width
  const H = 54;      // node height
  const ROW = 64;    // vertical distance between leaves
  const PAD = 8;

  const refKey = (r) => `${r.group || ''}/${r.kind}/${r.namespace || ''}/${r.name}`;

  // opts: {name, sync, health, nodes, resources, childApp(name, ns),
  //        childHref(app), selected (refKey), onSelect(resource)}
  function renderTree(opts) {
    const byUid = new Map();
    const byKey = new Map();
    const status = new Map((opts.resources || []).map((r) => [refKey(r), r]));
    const root = { kind: 'Application', name: opts.name, root: true, children: [],
      sync: opts.sync, health: opts.health };
    const items = (opts.nodes || []).map((n) => ({ ...n, children: [] }));
    for (const n of items) {
      if (n.uid) byUid.set(n.uid, n);
      byKey.set(refKey(n), n);
    }
    // Tracked objects missing from the cluster are not in the tree: they
    // are drawn too (Missing), from the application's resources.
    for (const r of opts.resources || []) {
      if (!byKey.has(refKey(r))) {
        const n = { group: r.group, kind: r.kind, namespace: r.namespace, name: r.name, children: [] };
        items.push(n);
        byKey.set(refKey(n), n);
      }
    }
    for (const n of items) {
      const parent = (n.parentRefs || []).map((p) => byUid.get(p.uid) || byKey.get(refKey(p))).find(Boolean);
      (parent && parent !== n ? parent : root).children.push(n);
    }
    const order = (a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`);

    // Layout: leaves take the next row; a parent sits level with the
    // middle of its children.
    let next = 0;
    let depthMax = 0;
    const placed = [];
    const seen = new Set();
    function place(n, depth) {
      seen.add(n);
      depthMax = Math.max(depthMax, depth);
      n.depth = depth;
      const kids = n.children.filter((c) => !seen.has(c)).sort(order);
      n.children = kids;
      if (kids.length === 0) {
        n.row = next;
        next += 1;
      } else {
        kids.forEach((c) => place(c, depth + 1));
        n.row = (kids[0].row + kids[kids.length - 1].row) / 2;
      }
      placed.push(n);
    }
    place(root, 0);

    const width = depthMax * COL + W + 2 * PAD;
    const height = Math.max(1, next) * ROW + 2 * PAD;
    const x = (n) => PAD + n.depth * COL;
    const y = (n) => PAD + n.row * ROW;
    const edges = svg('svg', { className: 'tree-edges', width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true' },
      placed.flatMap((p) => p.children.map((c) => {
        const x1 = x(p) + W;
        const y1 = y(p) + H / 2;
        const x2 = x(c);
        const y2 = y(c) + H / 2;
        const mid = (x1 + x2) / 2;
        return svg('path', { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` });
      })));

    const nodes = placed.map((n) => {
      let sync;
      let health;
      let href = null;
      if (n.root) {
        sync = n.sync;
        health = n.health;
      } else {
        const s = status.get(refKey(n));
        sync = s ? s.status : null;
        health = (n.health && n.health.status) || (s && s.health && s.health.status) || null;
        if (s && !n.uid && !health) health = 'Missing';
        if (n.kind === 'Application' && (n.group || s?.group) === 'argoproj.io') {
          // A child application: its own sync and health, and its page.
          const child = opts.childApp(n.name, n.namespace);
          if (child) {
            sync = child.status?.sync?.status || sync;
            health = child.status?.health?.status || health;
            href = opts.childHref(child);
          }
        }
      }
      const tracked = !n.root && status.has(refKey(n));
      const label = [n.kind, n.name, sync, health].filter(Boolean).join(' ');
      const body = [
        el('span', { className: 'tree-kind' }, n.kind, n.namespace && !n.root ? el('span', { className: 'muted' }, ` · ${n.namespace}`) : null),
        el('span', { className: 'tree-name', title: n.name }, n.name),
        el('span', { className: 'tree-status' },
          sync ? el('span', { className: `pill sync-${SYNC.includes(sync) ? sync : 'Unknown'}`, title: `sync: ${sync}` }, sync) : null,
          health ? el('span', { className: `pill health-${HEALTH.includes(health) ? health : 'Unknown'}`, title: `health: ${health}` }, health) : null),
      ];
      const classes = ['tree-node', n.root ? 'root' : '', tracked ? 'tracked' : 'owned',
        opts.selected === refKey(n) ? 'selected' : ''].filter(Boolean).join(' ');
      const style = { left: `${x(n)}px`, top: `${y(n)}px`, width: `${W}px`, height: `${H}px` };
      const data = { 'data-kind': n.kind, 'data-name': n.name, 'aria-label': label };
      if (href) return el('a', { className: `${classes} child-app`, href, style, ...data }, body);
      if (tracked) {
        return el('button', { type: 'button', className: classes, style, ...data,
          title: 'Show its diff', onclick: () => opts.onSelect(n) }, body);
      }
      return el('div', { className: classes, style, ...data, tabindex: '0' }, body);
    });
    const canvas = el('div', { className: 'tree-canvas', style: { width: `${width}px`, height: `${height}px` } }, edges, nodes);
    return el('div', { className: 'tree', role: 'group', 'aria-label': 'Resource tree' }, canvas);
  }

  window.Plumb.renderTree = renderTree;
  window.Plumb.refKey = refKey;
})();
