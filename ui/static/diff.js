// A resource's diff (live in the cluster against desired from Git, the
// unified diff the API sends, Secret values already masked by the server)
// shown unified or side by side.
'use strict';

(() => {
  const { el } = window.Plumb;

  function lineClass(line) {
    if (line.startsWith('+++') || line.startsWith('---')) return 'meta';
    if (line.startsWith('@@')) return 'hunk';
    if (line.startsWith('+')) return 'add';
    if (line.startsWith('-')) return 'del';
    return '';
  }

  function lines(diff) {
    return (diff || '').replace(/\n$/, '').split('\n');
  }

  function unified(diff) {
    return el('pre', { className: 'diff-unified', tabindex: '0' },
      lines(diff).map((line) => el('span', { className: lineClass(line) }, line || ' ')));
  }

  // Rows of [left, right, kind]: context on both sides, removals on the
  // left paired with the additions that follow them on the right.
  function pairs(diff) {
    const rows = [];
    let dels = [];
    let adds = [];
    const flush = () => {
      for (let i = 0; i < Math.max(dels.length, adds.length); i += 1) {
        rows.push([dels[i] ?? null, adds[i] ?? null, 'change']);
      }
      dels = [];
      adds = [];
    };
    for (const line of lines(diff)) {
      const kind = lineClass(line);
      if (kind === 'meta') continue;
      if (kind === 'del') { if (adds.length) flush(); dels.push(line.slice(1)); continue; }
      if (kind === 'add') { adds.push(line.slice(1)); continue; }
      flush();
      if (kind === 'hunk') rows.push([line, line, 'hunk']);
      else rows.push([line.slice(1), line.slice(1), 'same']);
    }
    flush();
    return rows;
  }

  function split(diff) {
    const cell = (text, side, kind) => {
      const cls = kind === 'hunk' ? 'hunk' : (kind === 'same' ? '' : (text === null ? 'blank' : side));
      return el('td', { className: cls }, text === null ? '' : (text || ' '));
    };
    return el('div', { className: 'diff-split-wrap', tabindex: '0' },
      el('table', { className: 'diff-split' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Live (cluster)'), el('th', {}, 'Desired (Git)'))),
        el('tbody', {}, pairs(diff).map(([l, r, kind]) => el('tr', {}, cell(l, 'del', kind), cell(r, 'add', kind))))));
  }

  window.Plumb.diffView = (diff, mode) => (mode === 'split' ? split(diff) : unified(diff));
})();
