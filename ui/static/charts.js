// Small SVG charts drawn by the page (no chart library): vertical bars
// over time, stacked (deployments, the failed ones on top), and
// horizontal bars comparing projects or applications.
'use strict';

(() => {
  const { el, svg } = window.Plumb;

  // {labels: ['8w', ...], series: [{name, className, values: [...]}],
  //  caption}: one stacked column per label.
  function columns(opts) {
    const width = 320;
    const height = 120;
    const left = 26;
    const bottom = 18;
    const n = opts.labels.length;
    const totals = opts.labels.map((_, i) => opts.series.reduce((s, x) => s + (x.values[i] || 0), 0));
    const max = Math.max(1, ...totals);
    const band = (width - left) / Math.max(1, n);
    const bar = Math.max(4, band * 0.6);
    const scale = (v) => (v / max) * (height - bottom - 6);
    const parts = [
      svg('line', { x1: left, y1: height - bottom, x2: width, y2: height - bottom, className: 'axis' }),
      svg('text', { x: left - 4, y: 10, className: 'tick', 'text-anchor': 'end' }, String(max)),
      svg('text', { x: left - 4, y: height - bottom, className: 'tick', 'text-anchor': 'end' }, '0'),
    ];
    opts.labels.forEach((label, i) => {
      const x = left + i * band + (band - bar) / 2;
      let base = height - bottom;
      for (const s of opts.series) {
        const v = s.values[i] || 0;
        if (v <= 0) continue;
        const h = scale(v);
        base -= h;
        parts.push(svg('rect', { x, y: base, width: bar, height: h, className: `bar ${s.className}` },
          svg('title', {}, `${label}: ${v} ${s.name}`)));
      }
      parts.push(svg('text', { x: x + bar / 2, y: height - 4, className: 'tick', 'text-anchor': 'middle' }, label));
    });
    const summary = opts.labels.map((l, i) => `${l}: ${opts.series.map((s) => `${s.values[i] || 0} ${s.name}`).join(', ')}`).join('; ');
    return el('figure', { className: 'chart' },
      svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${opts.caption}. ${summary}` }, parts),
      el('figcaption', {}, opts.caption,
        el('span', { className: 'legend' }, opts.series.map((s) => el('span', {}, el('span', { className: `swatch ${s.className}` }), s.name)))));
  }

  // {rows: [{label, value, text}], caption}: one bar per row, longest first
  // as given; value null draws no bar and shows text (e.g. "—").
  function bars(opts) {
    const width = 320;
    const rowH = 20;
    const labelW = 110;
    const rows = opts.rows;
    const height = Math.max(1, rows.length) * rowH + 4;
    const max = Math.max(0, ...rows.map((r) => r.value || 0)) || 1;
    const parts = rows.flatMap((r, i) => {
      const y = 2 + i * rowH;
      const w = r.value ? (r.value / max) * (width - labelW - 60) : 0;
      return [
        svg('text', { x: labelW - 6, y: y + 14, className: 'tick', 'text-anchor': 'end' },
          r.label.length > 16 ? `${r.label.slice(0, 15)}…` : r.label),
        svg('rect', { x: labelW, y: y + 3, width: Math.max(w, r.value ? 2 : 0), height: rowH - 6, className: `bar ${opts.className || 'deploy'}` },
          svg('title', {}, `${r.label}: ${r.text}`)),
        svg('text', { x: labelW + w + 4, y: y + 14, className: 'tick' }, r.text),
      ];
    });
    return el('figure', { className: 'chart' },
      svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img',
        'aria-label': `${opts.caption}. ${rows.map((r) => `${r.label}: ${r.text}`).join('; ')}` }, parts),
      el('figcaption', {}, opts.caption));
  }

  window.Plumb.charts = { columns, bars };
})();
