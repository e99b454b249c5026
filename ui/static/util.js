// Shared helpers of Plumb's page, loaded first: DOM and SVG builders,
// badges and formatting. Everything lands on window.Plumb, which the other
// files (graph.js, charts.js, diff.js, app.js) read.
//
// Every piece of server data reaches the page through textContent or an
// attribute, never as HTML; styles are set through the CSSOM (the content
// security policy forbids style attributes).
'use strict';

(() => {
  const SVG_NS = 'http://www.w3.org/2000/svg';

  function build(node, props, children) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'className') node.setAttribute('class', value);
      else if (key === 'style') Object.assign(node.style, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // el('tag', {className, style: {...}, onclick, ...attrs}, ...children):
  // children that are strings become text nodes.
  function el(tag, props, ...children) {
    return build(document.createElement(tag), props, children);
  }

  // The same for SVG elements.
  function svg(tag, props, ...children) {
    return build(document.createElementNS(SVG_NS, tag), props, children);
  }

  const SYNC = ['Synced', 'OutOfSync', 'Unknown'];
  const HEALTH = ['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing', 'Unknown'];
  const PHASES = ['Running', 'Succeeded', 'Failed', 'Error', 'Terminating'];

  // A colored badge; the class comes from a fixed list, never from the server.
  function badge(kind, value, known, title) {
    const v = known.includes(value) ? value : 'Unknown';
    return el('span', { className: `badge ${kind}-${v}`, title: title || undefined }, value || 'Unknown');
  }

  function shortRev(rev) {
    return typeof rev === 'string' && /^[0-9a-f]{40,}$/i.test(rev) ? rev.slice(0, 7) : (rev || '');
  }

  function time(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  // Seconds as a person reads them: 45 s, 12 min, 3.5 h, 2.1 d.
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 129600) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  window.Plumb = { el, svg, badge, shortRev, time, duration, SYNC, HEALTH, PHASES };
})();
