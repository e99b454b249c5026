// Plumb's web UI: lists applications, follows them live over server-sent
// events (polling every 5 s when the stream fails), and shows one
// application's resources, children, conditions, diff and history with Sync
// and Rollback actions. A second view lists the ApplicationSets with their
// applications and conditions, and confirms a held deletion.
//
// Every piece of server data reaches the page through textContent or an
// attribute, never as HTML. URLs are relative so the page also works behind
// a proxy under a path prefix.
'use strict';

(() => {
  const API = 'api/v1';
  const POLL_MS = 5000;
  const SSE_RETRY_MS = 30000;
  const DELETED_MEMORY_MS = 30000;
  const APPSET_LABEL = 'plumb.dev/applicationset';

  const state = {
    apps: new Map(),          // name (keyOf) -> Application (from the list or the stream)
    inFlight: new Set(),      // per request of the list or an application: the events since it was sent
    deleted: new Map(),       // name -> when its DELETED event came (a set's status may still list it)
    home: null,               // the application namespace (GET settings), once known
    selected: null,           // name of the application shown, or null
    detail: null,             // full Application of the selected one (with history)
    detailError: null,
    diff: null,               // managed resources of the selected one
    diffError: null,
    diffKey: null,            // what the diff was loaded for (see diffKeyOf)
    mode: 'connecting',       // 'live' | 'polling' | 'connecting'
    source: null,             // the EventSource
    pollTimer: null,
    busy: null,               // 'sync' | 'rollback' | 'refresh' while a request runs
    options: { prune: false, dryRun: false }, // the Sync checkboxes, kept across renders
    renderQueued: false,
    detailTimer: null,
    view: 'apps',             // 'apps' | 'app' | 'appsets' (all, or the one in appsetName)
    appsetName: null,         // the ApplicationSet shown alone, or null for all
    appsets: null,            // ApplicationSets, while their view is open
    appsetsError: null,
    appsetsTimer: null,       // the poll of the ApplicationSets view
    appsetsReload: null,      // a reload after events of generated applications
  };

  // ---- DOM helpers ----------------------------------------------------

  // el('tag', {className, title, href, onclick, ...attrs}, ...children):
  // children that are strings become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'className') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  const SYNC = ['Synced', 'OutOfSync', 'Unknown'];
  const HEALTH = ['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing', 'Unknown'];
  const PHASES = ['Running', 'Succeeded', 'Failed', 'Error', 'Terminating'];

  // A colored badge; the class comes from a fixed list, never from the server.
  function badge(kind, value, known, title) {
    const v = known.includes(value) ? value : 'Unknown';
    return el('span', { className: `badge ${kind}-${v}`, title: title || undefined }, value || 'Unknown');
  }

  function syncOf(app) { return (app.status && app.status.sync) || {}; }
  function healthOf(app) { return (app.status && app.status.health) || {}; }
  function sourceOf(app) { var s = app.spec || {}; return s.source || (s.sources || [])[0] || {}; }
  function nameOf(app) { return (app.metadata && app.metadata.name) || ''; }
  // Plumb's name of the Application object `name` in `namespace`: the name
  // alone in the application namespace, NAMESPACE/NAME in another one.
  function keyIn(name, namespace) {
    return namespace && state.home !== null && namespace !== state.home ? `${namespace}/${name}` : name;
  }
  function keyOf(app) { return keyIn(nameOf(app), app.metadata && app.metadata.namespace); }
  function labelsOf(app) { return (app.metadata && app.metadata.labels) || {}; }

  function shortRev(rev) {
    return typeof rev === 'string' && /^[0-9a-f]{40,}$/i.test(rev) ? rev.slice(0, 7) : (rev || '');
  }

  function time(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function toast(message, kind) {
    const t = $('toast');
    t.textContent = message;
    t.className = `toast ${kind || 'info'}`;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, kind === 'error' ? 10000 : 5000);
  }

  // ---- API ------------------------------------------------------------

  // Calls the API; throws an Error carrying the server's message.
  async function api(method, path, body) {
    const options = { method, headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${API}/${path}`, options);
    } catch (e) {
      throw new Error('cannot reach Plumb: is the server running?');
    }
    // No session, or it ended: ask for a login instead.
    if (response.status === 401 && path !== 'session') showLogin();
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.message ? data.message : (text || response.statusText);
      throw new Error(`${message} (HTTP ${response.status})`);
    }
    return data;
  }

  const appPath = (name, rest) => `applications/${encodeURIComponent(name)}${rest || ''}`;
  const appsetPath = (name, rest) => `applicationsets/${encodeURIComponent(name)}${rest || ''}`;
  const appHref = (name) => `#/apps/${encodeURIComponent(name)}`;
  const appsetHref = (name) => `#/appsets/${encodeURIComponent(name)}`;

  // ---- live updates ---------------------------------------------------

  function setMode(mode) {
    state.mode = mode;
    const c = $('connection');
    c.className = `connection ${mode}`;
    c.textContent = { live: 'live', polling: 'polling every 5 s', connecting: 'connecting…' }[mode];
    c.title = {
      live: 'Updates arrive as they happen (server-sent events)',
      polling: 'The event stream is unavailable; the list is reloaded every 5 seconds',
      connecting: 'Connecting to the event stream',
    }[mode];
  }

  function connect() {
    if (!('EventSource' in window)) { startPolling(); return; }
    const source = new EventSource(`${API}/stream/applications`);
    state.source = source;
    source.onopen = () => {
      setMode('live');
      stopPolling();
      // The stream starts with every application; reload the list too, so
      // that applications deleted while disconnected disappear.
      loadList();
    };
    source.onmessage = (event) => {
      let result;
      try { result = JSON.parse(event.data).result; } catch (e) { return; }
      if (!result || !result.application) return;
      applyEvent(result.type, result.application);
    };
    source.onerror = () => {
      // Fall back to polling, and try the stream again later.
      source.close();
      if (state.source === source) state.source = null;
      startPolling();
      setTimeout(() => { if (!state.source) connect(); }, SSE_RETRY_MS);
    };
  }

  function startPolling() {
    setMode('polling');
    if (state.pollTimer) return;
    const poll = () => {
      loadList();
      if (state.selected) loadDetail(state.selected, false);
    };
    poll();
    state.pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function applyEvent(type, app) {
    const name = keyOf(app);
    if (!name) return;
    // A request still out answers with what was true when it was sent: the
    // events since then win over its answer (a deleted application must
    // not come back from a list read before its deletion).
    for (const events of state.inFlight) events.set(name, { type, app });
    if (type === 'DELETED') state.deleted.set(name, Date.now());
    else state.deleted.delete(name);
    const before = state.apps.get(name);
    if (type === 'DELETED') state.apps.delete(name);
    else state.apps.set(name, app);
    // A generated application changed: its set's status follows soon.
    if (state.view === 'appsets' && (labelsOf(app)[APPSET_LABEL] || (before && labelsOf(before)[APPSET_LABEL]))) {
      clearTimeout(state.appsetsReload);
      state.appsetsReload = setTimeout(loadAppsets, 1000);
    }
    if (name === state.selected) {
      // Events may carry a bounded history: fetch the full application, once
      // a burst of events is over.
      clearTimeout(state.detailTimer);
      state.detailTimer = setTimeout(() => loadDetail(name, false), 500);
    }
    queueRender();
  }

  // Sends a GET of the API, noting the events that arrive while it is out.
  async function fetchNoting(path) {
    const events = new Map();
    state.inFlight.add(events);
    try {
      return { data: await api('GET', path), events };
    } finally {
      state.inFlight.delete(events);
    }
  }

  async function loadList() {
    try {
      const { data, events } = await fetchNoting('applications');
      const apps = new Map((data.items || []).map((a) => [keyOf(a), a]));
      for (const [name, e] of events) {
        if (e.type === 'DELETED') apps.delete(name);
        else apps.set(name, e.app);
      }
      state.apps = apps;
      queueRender();
    } catch (e) {
      if (state.mode === 'polling') $('connection').textContent = 'offline, retrying…';
    }
  }

  async function loadAppsets() {
    try {
      const data = await api('GET', 'applicationsets');
      state.appsets = data.items || [];
      state.appsetsError = null;
      // A set's status catches up with a deletion within seconds (its
      // status is rebuilt every 2 s): forget deletions older than that.
      const old = Date.now() - DELETED_MEMORY_MS;
      for (const [name, at] of state.deleted) if (at < old) state.deleted.delete(name);
    } catch (e) {
      state.appsetsError = e.message;
    }
    queueRender();
  }

  // While the ApplicationSets view is open: load now, then every 5 s (a
  // set's conditions change without any application event).
  function followAppsets(open) {
    clearInterval(state.appsetsTimer);
    clearTimeout(state.appsetsReload);
    state.appsetsTimer = null;
    if (!open) return;
    loadAppsets();
    state.appsetsTimer = setInterval(loadAppsets, POLL_MS);
  }

  // What the diff depends on: reload it only when this changes.
  function diffKeyOf(app) {
    const s = app.status || {};
    return JSON.stringify([s.sync, s.resources, s.operationState && s.operationState.finishedAt]);
  }

  async function loadDetail(name, reloadDiff) {
    try {
      const { data: app, events } = await fetchNoting(appPath(name));
      if (state.selected !== name) return;
      const since = events.get(name);
      if (since && since.type === 'DELETED') throw new Error(`application ${name} was deleted`);
      state.detail = app;
      state.detailError = null;
      state.apps.set(name, since ? since.app : app);
      if (reloadDiff || diffKeyOf(app) !== state.diffKey) loadDiff(name, app);
    } catch (e) {
      if (state.selected !== name) return;
      state.detailError = e.message;
    }
    queueRender();
  }

  async function loadDiff(name, app) {
    state.diffKey = diffKeyOf(app);
    try {
      const data = await api('GET', appPath(name, '/managed-resources'));
      if (state.selected !== name) return;
      state.diff = data.items || [];
      state.diffError = null;
    } catch (e) {
      if (state.selected !== name) return;
      state.diffError = e.message;
    }
    queueRender();
  }

  // ---- actions --------------------------------------------------------

  async function act(kind, work) {
    if (state.busy) return;
    state.busy = kind;
    render();
    try {
      await work();
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      state.busy = null;
      render();
    }
  }

  function operationMessage(app, what) {
    const op = (app.status && app.status.operationState) || {};
    const phase = op.phase || 'done';
    return [`${what} ${phase}`, op.message].filter(Boolean).join(': ');
  }

  function sync(name, prune, dryRun) {
    if (prune && !dryRun && !confirm(
      `Sync "${name}" with prune?\n\nObjects tracked by this application that are no longer in Git will be deleted.`)) return;
    act('sync', async () => {
      const app = await api('POST', appPath(name, '/sync'), { prune, dryRun });
      applyUpdated(name, app);
      const op = (app.status && app.status.operationState) || {};
      toast(operationMessage(app, dryRun ? 'Dry run' : 'Sync'), ['Failed', 'Error'].includes(op.phase) ? 'error' : 'ok');
    });
  }

  function rollback(name, entry) {
    const text = `Roll back "${name}" to history ${entry.id} (revision ${shortRev(entry.revision)})?\n\n`
      + 'This syncs to that revision, pins it, and suspends automated sync until the next manual sync.';
    if (!confirm(text)) return;
    act('rollback', async () => {
      const app = await api('POST', appPath(name, '/rollback'), { id: entry.id });
      applyUpdated(name, app);
      toast(operationMessage(app, 'Rollback'), 'ok');
    });
  }

  function refresh(name, hard) {
    act('refresh', async () => {
      const app = await api('GET', appPath(name, `?refresh=${hard ? 'hard' : 'normal'}`));
      applyUpdated(name, app);
      toast(`${hard ? 'Hard refresh' : 'Refresh'} done`, 'ok');
    });
  }

  // The token a DeletionHeld condition names, or null.
  function heldToken(condition) {
    const m = /"token":\s*"([^"]+)"/.exec(condition.message || '')
      || /plumb\.dev\/confirm-deletion=([^\s"]+)/.exec(condition.message || '');
    return m ? m[1] : null;
  }

  function confirmDeletion(name, condition, token) {
    const text = `Let ApplicationSet "${name}" delete its applications?\n\n${condition.message || ''}\n\n`
      + 'Their resources are deleted too where the applications carry the resources finalizer.';
    if (!confirm(text)) return;
    act('confirm', async () => {
      await api('POST', appsetPath(name, '/confirm-deletion'), { token });
      toast(`Deletion confirmed for "${name}"`, 'ok');
      await loadAppsets();
    });
  }

  function applyUpdated(name, app) {
    state.apps.set(name, app);
    if (state.selected === name) {
      state.detail = app;
      loadDiff(name, app);
    }
  }

  // ---- rendering ------------------------------------------------------

  function queueRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }

  function render() {
    $('list-view').hidden = state.view !== 'apps';
    $('detail-view').hidden = state.view !== 'app';
    $('appsets-view').hidden = state.view !== 'appsets';
    const onSets = state.view === 'appsets';
    $('nav-apps').className = onSets ? '' : 'active';
    $('nav-appsets').className = onSets ? 'active' : '';
    if (state.view === 'app') renderDetail();
    else if (onSets) renderAppsets();
    else renderList();
  }

  function renderList() {
    const filter = $('filter').value.trim().toLowerCase();
    const apps = [...state.apps.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
    const shown = apps.filter((a) => {
      const s = sourceOf(a);
      return !filter || [keyOf(a), s.repoURL, s.path].some((v) => (v || '').toLowerCase().includes(filter));
    });
    const rows = shown.map((app) => {
      const name = keyOf(app);
      const src = sourceOf(app);
      const href = appHref(name);
      return el('tr', { className: 'clickable', onclick: (e) => { if (e.target.tagName !== 'A') location.hash = href; } },
        el('td', { className: 'name' }, el('a', { href }, name)),
        el('td', {}, badge('sync', syncOf(app).status, SYNC)),
        el('td', {}, badge('health', healthOf(app).status, HEALTH, healthOf(app).message)),
        el('td', { className: 'mono', title: syncOf(app).revision || undefined }, shortRev(syncOf(app).revision)),
        el('td', { className: 'source' },
          el('span', { className: 'repo' }, src.repoURL || ''),
          src.path ? el('span', { className: 'path' }, src.path) : null));
    });
    $('app-rows').replaceChildren(...rows);
    const empty = $('list-empty');
    empty.hidden = shown.length > 0;
    empty.textContent = apps.length === 0
      ? (state.mode === 'connecting' ? 'Loading…' : 'No applications yet. Start `plumb serve --apps PATH` with Application manifests.')
      : 'No application matches the filter.';
    const count = (pred) => apps.filter(pred).length;
    $('counts').replaceChildren(
      `${apps.length} total`,
      el('span', { className: 'dot sync-OutOfSync' }), `${count((a) => syncOf(a).status === 'OutOfSync')} out of sync`,
      el('span', { className: 'dot health-Degraded' }), `${count((a) => healthOf(a).status === 'Degraded')} degraded`);
  }

  function field(label, ...value) {
    return [el('dt', {}, label), el('dd', {}, ...value)];
  }

  function card(title, ...body) {
    return el('section', { className: 'card' }, el('h2', {}, title), ...body);
  }

  function table(headers, rows, emptyText) {
    if (rows.length === 0) return el('p', { className: 'empty' }, emptyText);
    return el('table', {},
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
      el('tbody', {}, rows));
  }

  function renderDetail() {
    const name = state.selected;
    const app = state.detail || state.apps.get(name);
    const view = $('detail-view');
    const back = el('a', { href: '#/', className: 'back' }, '← Applications');
    if (!app) {
      view.replaceChildren(back, el('p', { className: 'empty' }, state.detailError || 'Loading…'));
      return;
    }
    const status = app.status || {};
    const src = sourceOf(app);
    const dest = (app.spec && app.spec.destination) || {};
    const automated = app.spec && app.spec.syncPolicy && app.spec.syncPolicy.automated;
    const busy = state.busy;

    const prune = el('input', { type: 'checkbox', checked: state.options.prune,
      onchange: (e) => { state.options.prune = e.target.checked; } });
    const dryRun = el('input', { type: 'checkbox', checked: state.options.dryRun,
      onchange: (e) => { state.options.dryRun = e.target.checked; } });
    const actions = el('div', { className: 'actions' },
      el('label', { className: 'check' }, prune, 'prune'),
      el('label', { className: 'check' }, dryRun, 'dry run'),
      el('button', { className: 'primary', disabled: !!busy, onclick: () => sync(name, prune.checked, dryRun.checked) },
        busy === 'sync' ? 'Syncing…' : 'Sync'),
      el('button', { disabled: !!busy, onclick: () => refresh(name, false), title: 'Compare with Git again' },
        busy === 'refresh' ? 'Refreshing…' : 'Refresh'),
      el('button', { disabled: !!busy, onclick: () => refresh(name, true), title: 'Fetch the repository, render and compare again' },
        'Hard refresh'));

    const head = el('div', { className: 'detail-head' },
      el('div', {},
        el('h1', {}, name),
        el('div', { className: 'badges' },
          badge('sync', syncOf(app).status, SYNC),
          badge('health', healthOf(app).status, HEALTH, healthOf(app).message),
          syncOf(app).revision ? el('span', { className: 'mono rev', title: syncOf(app).revision }, shortRev(syncOf(app).revision)) : null)),
      actions);

    const parts = [back, head];
    if (state.detailError) parts.push(el('p', { className: 'banner error' }, state.detailError));
    if (status.rollback) {
      parts.push(el('p', { className: 'banner warn' },
        `Rolled back to history ${status.rollback.historyId} (revision ${shortRev(status.rollback.revision)}) at ${time(status.rollback.at)}: `
        + 'the revision is pinned and automated sync is suspended until the next manual sync.'));
    }

    const policy = automated
      ? `Automated${[automated.prune && 'prune', automated.selfHeal && 'self-heal'].filter(Boolean).map((f) => `, ${f}`).join('')}`
      : 'Manual';
    parts.push(card('Summary', el('dl', { className: 'fields' },
      field('Repository', el('span', { className: 'mono' }, src.repoURL || '')),
      field('Path', el('span', { className: 'mono' }, src.path || '.')),
      field('Target revision', src.targetRevision || 'HEAD'),
      field('Destination', [dest.server || dest.name || '', dest.namespace].filter(Boolean).join(' / ')),
      field('Sync policy', policy),
      labelsOf(app)[APPSET_LABEL]
        ? field('ApplicationSet', el('a', { href: appsetHref(labelsOf(app)[APPSET_LABEL]), className: 'generated-by' }, labelsOf(app)[APPSET_LABEL]))
        : null,
      field('Health', healthOf(app).message || healthOf(app).status || 'Unknown'),
      field('Last compared', time(status.reconciledAt) || '—'))));

    if ((status.conditions || []).length > 0) {
      parts.push(card('Conditions', el('ul', { className: 'conditions' },
        status.conditions.map((c) => el('li', { className: /Error/.test(c.type) ? 'error' : 'warn' },
          el('strong', {}, c.type), ' ', c.message,
          c.lastTransitionTime ? el('span', { className: 'muted' }, ` (since ${time(c.lastTransitionTime)})`) : null)))));
    }

    const op = status.operationState;
    if (op) {
      const dry = op.operation && op.operation.sync && op.operation.sync.dryRun;
      parts.push(card('Last operation',
        el('p', {}, badge('phase', op.phase, PHASES), dry ? ' (dry run) ' : ' ', op.message || ''),
        el('p', { className: 'muted' }, `Started ${time(op.startedAt)}`, op.finishedAt ? `, finished ${time(op.finishedAt)}` : ''),
        renderOperationResults(op)));
    }

    const children = (status.resources || []).filter((r) => r.kind === 'Application' && r.group === 'argoproj.io');
    if (children.length > 0) parts.push(card('Children', renderChildren(children)));

    parts.push(card('Resources', table(['Group', 'Kind', 'Namespace', 'Name', 'Sync', 'Health'],
      (status.resources || []).map((r) => el('tr', {},
        el('td', { className: 'muted' }, r.group || ''),
        el('td', {}, r.kind),
        el('td', {}, r.namespace || ''),
        el('td', { className: 'name' }, r.name),
        el('td', {}, badge('sync', r.status, SYNC), r.requiresPruning ? el('span', { className: 'muted' }, ' requires pruning') : null),
        el('td', {}, r.health ? badge('health', r.health.status, HEALTH, r.health.message) : ''))),
      'No resources.')));

    parts.push(card('Diff', renderDiff(name, app)));
    parts.push(card('History', renderHistory(name, status.history || [])));
    view.replaceChildren(...parts);
  }

  // What the operation did to each resource, in order; a hook shows its
  // type and its phase (Running, Succeeded, Failed) as it moves.
  function renderOperationResults(op) {
    const results = (op.syncResult && op.syncResult.resources) || [];
    if (results.length === 0) return null;
    return table(['Phase', 'Kind', 'Namespace', 'Name', 'Status', 'Message'],
      results.map((r) => el('tr', { className: r.hookType ? 'op-result hook' : 'op-result' },
        el('td', { className: 'muted' }, r.syncPhase || ''),
        el('td', {}, r.kind),
        el('td', {}, r.namespace || ''),
        el('td', { className: 'name' }, r.name),
        el('td', {}, r.hookType ? [badge('phase', r.hookPhase, PHASES), ` ${r.hookType} hook`] : r.status || ''),
        el('td', {}, r.message || ''))), '');
  }

  // The Application Plumb manages for a resource entry, if any.
  function managedApp(name, namespace) {
    return state.apps.get(keyIn(name, namespace)) || null;
  }

  // A parent's child Applications with their own sync and health (the
  // parent's entry says whether the child's object matches Git).
  function renderChildren(children) {
    const rows = children.map((r) => {
      const child = managedApp(r.name, r.namespace);
      const sync = child ? syncOf(child).status : r.status;
      const health = child ? healthOf(child) : (r.health || {});
      return el('tr', { className: 'child' },
        el('td', { className: 'name' }, child ? el('a', { href: appHref(keyOf(child)) }, r.name) : r.name),
        el('td', {}, r.namespace || ''),
        el('td', {}, badge('sync', sync, SYNC)),
        el('td', {}, badge('health', health.status, HEALTH, health.message),
          child ? null : el('span', { className: 'muted' }, ' not managed by this Plumb')));
    });
    return table(['Name', 'Namespace', 'Sync', 'Health'], rows, 'No children.');
  }

  // ---- ApplicationSets ------------------------------------------------

  const SET_STATES = ['ErrorOccurred', 'DeletionHeld', 'UpToDate', 'Pending'];

  function conditionOf(set, type) {
    return ((set.status && set.status.conditions) || []).find((c) => c.type === type);
  }

  // A set's state from its conditions, worst first.
  function setState(set) {
    const isTrue = (type) => { const c = conditionOf(set, type); return c && c.status === 'True'; };
    if (isTrue('ErrorOccurred')) return 'ErrorOccurred';
    if (isTrue('DeletionHeld')) return 'DeletionHeld';
    if (isTrue('ResourcesUpToDate')) return 'UpToDate';
    return 'Pending';
  }

  function setBadge(set) {
    const s = setState(set);
    const text = { UpToDate: 'Up to date', Pending: 'Not up to date' }[s] || s;
    const why = conditionOf(set, s === 'UpToDate' || s === 'Pending' ? 'ResourcesUpToDate' : s);
    return el('span', { className: `badge set-${SET_STATES.includes(s) ? s : 'Pending'}`, title: (why && why.message) || undefined }, text);
  }

  // A set's applications: its status.resources, and any application Plumb
  // shows with its label; sync and health from the live application when
  // known (it follows the event stream), else from the set's status.
  function setApps(set) {
    const name = nameOf(set);
    const byName = new Map();
    for (const r of (set.status && set.status.resources) || []) {
      // Deleted since the set's status was written: gone.
      if (!state.deleted.has(keyIn(r.name, r.namespace))) byName.set(r.name, r);
    }
    for (const app of state.apps.values()) {
      // A set's applications are in the application namespace.
      const key = keyOf(app);
      if (labelsOf(app)[APPSET_LABEL] === name && !key.includes('/') && !byName.has(key)) byName.set(key, { name: key });
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)).map((r) => {
      const app = managedApp(r.name, r.namespace);
      return {
        name: r.name,
        app,
        sync: app ? syncOf(app).status : r.status,
        health: app ? healthOf(app) : (r.health || {}),
      };
    });
  }

  function renderAppset(set) {
    const name = nameOf(set);
    const conditions = (set.status && set.status.conditions) || [];
    const apps = setApps(set);
    const rows = apps.map((a) => el('tr', { className: 'clickable', onclick: (e) => { if (e.target.tagName !== 'A') location.hash = appHref(a.name); } },
      el('td', { className: 'name' }, el('a', { href: appHref(a.name) }, a.name)),
      el('td', {}, badge('sync', a.sync, SYNC)),
      el('td', {}, badge('health', a.health.status, HEALTH, a.health.message))));
    const items = conditions.map((c) => {
      const held = c.type === 'DeletionHeld' && c.status === 'True';
      const token = held ? heldToken(c) : null;
      const bad = (c.type === 'ErrorOccurred' && c.status === 'True') || (c.type !== 'ErrorOccurred' && c.status === 'False');
      return el('li', { className: held ? 'warn held' : (bad ? 'error' : 'info') },
        el('strong', {}, c.type), ' ', el('span', { className: 'muted' }, `${c.status}${c.reason ? ` (${c.reason})` : ''}`),
        c.message ? el('div', { className: 'message' }, c.message) : null,
        token ? el('div', { className: 'actions' },
          el('button', { className: 'primary confirm-deletion', disabled: !!state.busy, onclick: () => confirmDeletion(name, c, token) },
            state.busy === 'confirm' ? 'Confirming…' : 'Confirm deletion')) : null);
    });
    return el('section', { className: 'card appset', 'data-appset': name },
      el('div', { className: 'appset-head' },
        el('h2', {}, el('a', { href: appsetHref(name) }, name)),
        setBadge(set),
        el('span', { className: 'muted' }, `${apps.length} application${apps.length === 1 ? '' : 's'}`)),
      table(['Application', 'Sync', 'Health'], rows, 'No applications generated.'),
      items.length ? el('ul', { className: 'conditions' }, items) : null);
  }

  function renderAppsets() {
    const view = $('appsets-view');
    const one = state.appsetName;
    const head = one
      ? el('a', { href: '#/appsets', className: 'back' }, '← ApplicationSets')
      : el('div', { className: 'toolbar' }, el('h1', {}, 'ApplicationSets'));
    const parts = [head];
    if (state.appsetsError) parts.push(el('p', { className: 'banner error' }, state.appsetsError));
    if (state.appsets === null) {
      parts.push(el('p', { className: 'empty' }, state.appsetsError ? '' : 'Loading…'));
    } else {
      const sets = state.appsets.filter((s) => !one || nameOf(s) === one)
        .sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
      if (sets.length === 0) {
        parts.push(el('p', { className: 'empty' }, one
          ? `No ApplicationSet named "${one}".`
          : 'No ApplicationSets. Plumb generates applications from ApplicationSet objects in its --namespace.'));
      }
      parts.push(...sets.map(renderAppset));
    }
    view.replaceChildren(...parts);
  }

  function renderDiff(name, app) {
    const reload = el('button', { className: 'small', onclick: () => loadDiff(name, app) }, 'Reload');
    if (state.diffError) return [el('p', { className: 'banner error' }, state.diffError), reload];
    if (state.diff === null) return el('p', { className: 'empty' }, 'Loading…');
    const modified = state.diff.filter((r) => r.modified);
    if (modified.length === 0) return [el('p', { className: 'empty' }, 'No differences between Git and the cluster.'), reload];
    return [
      ...modified.map((r) => el('div', { className: 'diff' },
        el('h3', { className: 'mono' }, `${r.group ? `${r.group}/` : ''}${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`),
        el('pre', {}, (r.diff || '').replace(/\n$/, '').split('\n').map((line) => el('span', { className: diffClass(line) }, line || ' '))))),
      reload,
    ];
  }

  function diffClass(line) {
    if (line.startsWith('+++') || line.startsWith('---')) return 'meta';
    if (line.startsWith('@@')) return 'hunk';
    if (line.startsWith('+')) return 'add';
    if (line.startsWith('-')) return 'del';
    return '';
  }

  function renderHistory(name, history) {
    const newest = history.length ? history[history.length - 1].id : null;
    const rows = [...history].reverse().map((h) => {
      const by = h.initiatedBy || {};
      return el('tr', {},
        el('td', {}, String(h.id)),
        el('td', {}, time(h.deployedAt)),
        el('td', { className: 'mono', title: h.revision }, shortRev(h.revision)),
        el('td', {}, by.automated ? 'automated' : (by.username || 'manual')),
        el('td', { className: 'right' }, h.id === newest
          ? el('span', { className: 'muted' }, 'current')
          : el('button', { className: 'small', disabled: !!state.busy, onclick: () => rollback(name, h) },
            state.busy === 'rollback' ? 'Rolling back…' : 'Rollback')));
    });
    return table(['ID', 'Deployed', 'Revision', 'Initiated by', ''], rows, 'Not deployed yet.');
  }

  // ---- routing --------------------------------------------------------

  function decoded(text) {
    try { return decodeURIComponent(text); } catch (e) { return null; }
  }

  function route() {
    const hash = location.hash;
    const app = /^#\/apps\/(.+)$/.exec(hash);
    const set = /^#\/appsets(?:\/(.+))?$/.exec(hash);
    const name = app ? decoded(app[1]) : null;
    const view = name !== null ? 'app' : (set ? 'appsets' : 'apps');
    if (view === 'appsets') state.appsetName = set[1] ? decoded(set[1]) : null;
    if ((view === 'appsets') !== (state.view === 'appsets')) followAppsets(view === 'appsets');
    if (view !== state.view) window.scrollTo(0, 0);
    state.view = view;
    if (name !== state.selected) {
      state.selected = name;
      state.detail = null;
      state.detailError = null;
      state.diff = null;
      state.diffError = null;
      state.diffKey = null;
      if (name) loadDetail(name, true);
      window.scrollTo(0, 0);
    }
    render();
  }

  // ---- login ----------------------------------------------------------

  // The login form replaces the page; the session cookie the server sets
  // on success carries every later request (and the event stream).
  function showLogin(message) {
    if (state.source) { state.source.close(); state.source = null; }
    stopPolling();
    $('main').hidden = true;
    $('login-view').hidden = false;
    $('logout').hidden = true;
    $('user').hidden = true;
    const error = $('login-error');
    error.hidden = !message;
    error.textContent = message || '';
    $('login-password').focus();
  }

  async function submitLogin(event) {
    event.preventDefault();
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    try {
      await api('POST', 'session', { username, password });
    } catch (e) {
      showLogin(e.message);
      return;
    }
    $('login-password').value = '';
    location.reload();
  }

  async function logout() {
    try { await api('DELETE', 'session'); } catch (e) { /* the cookie goes anyway */ }
    location.reload();
  }

  function start() {
    route();
    // Names depend on the application namespace: learn it first (an older
    // or unreachable server: names alone).
    api('GET', 'settings')
      .then((s) => { state.home = (s && s.controllerNamespace) || null; })
      .catch(() => {})
      .finally(() => { loadList(); connect(); });
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('filter').addEventListener('input', () => renderList());
    window.addEventListener('hashchange', route);
    $('login-form').addEventListener('submit', submitLogin);
    $('logout').addEventListener('click', logout);
    api('GET', 'session/userinfo')
      .then((info) => {
        if (!info || !info.loggedIn) { showLogin(); return; }
        if (!info.authDisabled) {
          $('user').textContent = info.username;
          $('user').hidden = false;
          $('logout').hidden = false;
        }
        start();
      })
      // An older server without sessions: go on as before.
      .catch(() => start());
  });
})();
