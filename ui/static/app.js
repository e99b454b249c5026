// Plumb's web UI: the application list (status counts, filters kept in the
// URL, only the rows on screen rendered), followed live over server-sent
// events (polling every 5 s when the stream fails); one application's page
// (resource tree, diff, operation, history with commits, DORA charts, Sync
// and Rollback); the ApplicationSets (generators, applications, progressive
// sync steps); and the DORA view. Buttons the signed-in user may not use
// are not offered (GET account/can-i).
//
// Helpers come from util.js, graph.js, diff.js and charts.js (loaded
// first). Every piece of server data reaches the page through textContent
// or an attribute, never as HTML. URLs are relative so the page also works
// behind a proxy under a path prefix.
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
    version: 0,               // bumped when state.apps changes
    sorted: null,             // [version, apps sorted by name]
    shown: [],                // the applications the filters let through, in order
    filters: {},              // the list's filters, as in the URL (see FILTERS)
    tree: null,               // resource-tree nodes of the selected application
    treeError: null,
    treeTimer: null,          // reloads the tree while the page is open (Pods come and go)
    diffMode: localStorage.getItem('plumb.diffMode') === 'split' ? 'split' : 'unified',
    diffSelected: null,       // refKey of the resource whose diff is shown
    revMeta: new Map(),       // revision -> {author, date, message} | {error}
    can: new Map(),           // can-i path -> true | false | null (asking)
    dora: null,               // {name, weeks: [...], now} of the selected application
    doraView: null,           // the DORA view's data
    doraQuery: { project: '', window: '30d' },
    openGenerators: new Set(), // ApplicationSets whose generators are shown
    perf: { listLoaded: null, firstRows: null, lastList: null }, // read by scripts/bench-ui
  };
  window.Plumb.state = state;

  const { el, badge, shortRev, time, duration, SYNC, HEALTH, PHASES } = window.Plumb;
  const $ = (id) => document.getElementById(id);

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
    state.version += 1;
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
      if (!state.perf.listLoaded) state.perf.listLoaded = performance.now();
      const apps = new Map((data.items || []).map((a) => [keyOf(a), a]));
      for (const [name, e] of events) {
        if (e.type === 'DELETED') apps.delete(name);
        else apps.set(name, e.app);
      }
      state.apps = apps;
      state.version += 1;
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
      state.version += 1;
      if (reloadDiff || diffKeyOf(app) !== state.diffKey) loadDiff(name, app);
      loadTree(name);
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

  async function loadTree(name) {
    try {
      const data = await api('GET', appPath(name, '/resource-tree'));
      if (state.selected !== name) return;
      state.tree = (data && data.nodes) || [];
      state.treeError = null;
    } catch (e) {
      if (state.selected !== name) return;
      state.treeError = e.message;
    }
    queueRender();
  }

  // The commit of a revision (author, date, message), fetched once.
  function revisionMeta(name, revision) {
    if (!revision) return null;
    if (state.revMeta.has(revision)) return state.revMeta.get(revision);
    state.revMeta.set(revision, null);
    api('GET', appPath(name, `/revisions/${encodeURIComponent(revision)}/metadata`))
      .then((m) => state.revMeta.set(revision, m || {}))
      .catch((e) => state.revMeta.set(revision, { error: e.message }))
      .finally(queueRender);
    return null;
  }

  // ---- permissions ----------------------------------------------------

  // Whether the signed-in user may do `action` on `object` of `resource`
  // (Argo CD's can-i): true, false, or null while the server is asked. A
  // button is offered only once the answer is yes; the server enforces
  // every request anyway.
  function can(resource, action, object) {
    const key = `${resource}/${action}/${object}`;
    if (state.can.has(key)) return state.can.get(key);
    state.can.set(key, null);
    const path = ['account', 'can-i', resource, action, ...object.split('/')].map(encodeURIComponent).join('/');
    api('GET', path)
      .then((d) => state.can.set(key, !!d && d.value === 'yes'))
      // An older server without can-i: offer the button, the server decides.
      .catch((e) => state.can.set(key, /HTTP 404/.test(e.message)))
      .finally(queueRender);
    return null;
  }

  function projectOf(app) { return (app.spec && app.spec.project) || 'default'; }
  function canApp(app, action) { return can('applications', action, `${projectOf(app)}/${keyOf(app)}`); }

  // ---- DORA -----------------------------------------------------------

  const WEEKS = 8;
  const DAY = 86400000;

  // The DORA figures of `query` (app=... or project=... or nothing) over
  // `window`, and deployments per week for the last eight weeks: the API
  // answers for a window ending now, so week k is the difference between
  // the windows of k and k-1 weeks.
  async function loadDoraSeries(query, span) {
    const q = (w) => `dora?${new URLSearchParams({ ...query, window: w })}`;
    const answers = await Promise.all([
      api('GET', q(span)),
      ...Array.from({ length: WEEKS }, (_, i) => api('GET', q(`${7 * (i + 1)}d`))),
    ]);
    const [report, ...cumulative] = answers;
    const now = Date.now();
    const weeks = cumulative.map((r, i) => {
      const before = i === 0 ? { deployments: 0, failedDeployments: 0 } : cumulative[i - 1].total;
      const start = new Date(now - 7 * (i + 1) * DAY);
      return {
        label: start.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }),
        deployments: Math.max(0, r.total.deployments - before.deployments),
        failed: Math.max(0, r.total.failedDeployments - before.failedDeployments),
      };
    }).reverse();
    return { report, weeks };
  }

  async function loadAppDora(name) {
    try {
      const data = await loadDoraSeries({ app: name }, '30d');
      if (state.selected !== name) return;
      state.dora = { name, ...data };
    } catch (e) {
      if (state.selected !== name) return;
      state.dora = { name, error: e.message };
    }
    queueRender();
  }

  async function loadDoraView() {
    const { project, window: span } = state.doraQuery;
    const key = JSON.stringify(state.doraQuery);
    state.doraView = { key, loading: true };
    render();
    try {
      const data = await loadDoraSeries(project ? { project } : {}, span);
      if (JSON.stringify(state.doraQuery) !== key) return;
      state.doraView = { key, ...data };
    } catch (e) {
      if (JSON.stringify(state.doraQuery) !== key) return;
      state.doraView = { key, error: e.message };
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
    state.version += 1;
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
    $('dora-view').hidden = state.view !== 'dora';
    const nav = { apps: 'nav-apps', app: 'nav-apps', appsets: 'nav-appsets', dora: 'nav-dora' }[state.view];
    for (const id of ['nav-apps', 'nav-appsets', 'nav-dora']) {
      $(id).className = id === nav ? 'active' : '';
      if (id === nav) $(id).setAttribute('aria-current', 'page'); else $(id).removeAttribute('aria-current');
    }
    if (state.view === 'app') renderDetail();
    else if (state.view === 'appsets') renderAppsets();
    else if (state.view === 'dora') renderDora();
    else renderList();
  }

  // ---- the application list -------------------------------------------

  // The list's filters, in the URL's query (#/?sync=OutOfSync&label=env%3Dprod).
  const FILTERS = ['q', 'sync', 'health', 'project', 'namespace', 'cluster', 'label'];
  const OVERSCAN = 8;

  function clusterOf(app) { const d = (app.spec && app.spec.destination) || {}; return d.name || d.server || ''; }
  function destNamespace(app) { return (app.spec && app.spec.destination && app.spec.destination.namespace) || ''; }

  // `env=prod,team!=a,!legacy,tier`: every term must hold. Parsed once
  // per change of the filter, not once per application.
  function labelTest(expr) {
    const tests = expr.split(',').map((t) => t.trim()).filter(Boolean).map((term) => {
      let m = /^([^!=]+)!=(.*)$/.exec(term);
      if (m) { const [k, v] = [m[1].trim(), m[2].trim()]; return (l) => l[k] !== v; }
      m = /^([^=]+)==?(.*)$/.exec(term);
      if (m) { const [k, v] = [m[1].trim(), m[2].trim()]; return (l) => l[k] === v; }
      if (term.startsWith('!')) { const k = term.slice(1).trim(); return (l) => !(k in l); }
      return (l) => term in l;
    });
    return (app) => { const l = labelsOf(app); return tests.every((t) => t(l)); };
  }

  // The filters as one test of an application.
  function matcher(f) {
    const labels = f.label ? labelTest(f.label) : null;
    const q = f.q ? f.q.toLowerCase() : null;
    return (app) => {
      if (f.sync && (syncOf(app).status || 'Unknown') !== f.sync) return false;
      if (f.health && (healthOf(app).status || 'Unknown') !== f.health) return false;
      if (f.project && projectOf(app) !== f.project) return false;
      if (f.namespace && destNamespace(app) !== f.namespace) return false;
      if (f.cluster && clusterOf(app) !== f.cluster) return false;
      if (labels && !labels(app)) return false;
      if (q) {
        const s = sourceOf(app);
        if (![keyOf(app), s.repoURL, s.path, s.chart].some((v) => (v || '').toLowerCase().includes(q))) return false;
      }
      return true;
    };
  }

  // The applications sorted by name, and what the counts and the filters'
  // choices need, computed once per change of the list.
  function facets() {
    if (state.sorted && state.sorted.version === state.version) return state.sorted;
    const apps = [...state.apps.values()].map((a) => [keyOf(a), a]);
    apps.sort((a, b) => (a[0] < b[0] ? -1 : (a[0] > b[0] ? 1 : 0)));
    const counts = {};
    const projects = new Set();
    const namespaces = new Set();
    const clusters = new Set();
    for (const [, a] of apps) {
      const sync = syncOf(a).status || 'Unknown';
      const health = healthOf(a).status || 'Unknown';
      counts[`sync:${sync}`] = (counts[`sync:${sync}`] || 0) + 1;
      counts[`health:${health}`] = (counts[`health:${health}`] || 0) + 1;
      projects.add(projectOf(a));
      if (destNamespace(a)) namespaces.add(destNamespace(a));
      if (clusterOf(a)) clusters.add(clusterOf(a));
    }
    const sortSet = (set) => [...set].sort();
    state.sorted = {
      version: state.version,
      apps: apps.map((p) => p[1]),
      counts,
      choices: { project: sortSet(projects), namespace: sortSet(namespaces), cluster: sortSet(clusters) },
    };
    return state.sorted;
  }

  function filtersFromQuery(query) {
    const params = new URLSearchParams(query || '');
    const f = {};
    for (const k of FILTERS) if (params.get(k)) f[k] = params.get(k);
    return f;
  }

  // Puts the filters in the URL (without a history entry per keystroke)
  // and shows the list they select.
  function setFilters(next) {
    const f = {};
    for (const k of FILTERS) if (next[k]) f[k] = next[k];
    state.filters = f;
    const query = new URLSearchParams(f).toString();
    history.replaceState(null, '', `#/${query ? `?${query}` : ''}`);
    sessionStorage.setItem('plumb.listQuery', query);
    syncFilterControls();
    renderList();
  }

  function readFilterControls() {
    setFilters({
      q: $('filter').value.trim(),
      sync: $('f-sync').value,
      health: $('f-health').value,
      project: $('f-project').value,
      namespace: $('f-namespace').value,
      cluster: $('f-cluster').value,
      label: $('f-label').value.trim(),
    });
  }

  // The controls show the filters (after a reload or a shared URL).
  function syncFilterControls() {
    const f = state.filters;
    if (document.activeElement !== $('filter')) $('filter').value = f.q || '';
    if (document.activeElement !== $('f-label')) $('f-label').value = f.label || '';
    $('f-sync').value = f.sync || '';
    $('f-health').value = f.health || '';
    $('f-clear').hidden = Object.keys(f).length === 0;
  }

  // The choices of project, namespace and cluster: the ones the
  // applications use, and the one selected even when none uses it.
  function fillChoices(choices) {
    for (const key of ['project', 'namespace', 'cluster']) {
      const select = $(`f-${key}`);
      const wanted = state.filters[key] || '';
      const values = [...choices[key]];
      if (wanted && !values.includes(wanted)) values.push(wanted);
      const signature = values.join('\n');
      if (select.dataset.signature !== signature) {
        select.replaceChildren(el('option', { value: '' }, `Any ${key}`), ...values.map((v) => el('option', { value: v }, v)));
        select.dataset.signature = signature;
      }
      select.value = wanted;
    }
  }

  const COUNTS = [
    ['sync', 'Synced'], ['sync', 'OutOfSync'],
    ['health', 'Healthy'], ['health', 'Progressing'], ['health', 'Degraded'], ['health', 'Missing'],
  ];

  function renderCounts(all, counts) {
    $('counts').replaceChildren(
      el('span', { className: 'count-total' }, `${all.length} applications`),
      ...COUNTS.map(([kind, value]) => {
        const on = state.filters[kind] === value;
        return el('button', {
          type: 'button',
          className: `count ${on ? 'on' : ''}`,
          'data-filter': kind,
          'data-value': value,
          'aria-pressed': on ? 'true' : 'false',
          title: on ? `Show every ${kind} status` : `Show only ${value}`,
          onclick: () => setFilters({ ...state.filters, [kind]: on ? '' : value }),
        }, el('span', { className: `dot ${kind}-${value}` }), value, el('strong', {}, String(counts[`${kind}:${value}`] || 0)));
      }));
  }

  function renderList() {
    const t0 = performance.now();
    const { apps: all, counts, choices } = facets();
    const f = state.filters;
    state.shown = Object.keys(f).length ? all.filter(matcher(f)) : all;
    renderCounts(all, counts);
    fillChoices(choices);
    syncFilterControls();
    renderRows();
    const empty = $('list-empty');
    empty.hidden = state.shown.length > 0;
    empty.textContent = all.length === 0
      ? (state.mode === 'connecting' ? 'Loading…' : 'No applications yet. Start `plumb serve --apps PATH` with Application manifests.')
      : 'No application matches the filters.';
    $('shown').textContent = state.shown.length === all.length ? '' : `Showing ${state.shown.length} of ${all.length}`;
    const now = performance.now();
    state.perf.lastList = { ms: now - t0, shown: state.shown.length, total: all.length, at: now };
    if (state.perf.firstRows === null && state.shown.length > 0) state.perf.firstRows = now;
  }

  // Only the rows on screen (and a few around) exist: every row has the
  // same height (--row-h), the list is as tall as all of them.
  function renderRows() {
    const box = $('app-rows');
    const list = state.shown;
    const h = parseFloat(getComputedStyle(box).getPropertyValue('--row-h')) || 44;
    box.style.height = `${list.length * h}px`;
    const top = box.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / h) - OVERSCAN);
    const last = Math.min(list.length, Math.ceil((window.innerHeight - top) / h) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i += 1) rows.push(appRow(list[i], i, h));
    box.replaceChildren(...rows);
  }

  function appRow(app, index, h) {
    const name = keyOf(app);
    const src = sourceOf(app);
    const href = appHref(name);
    const health = healthOf(app);
    return el('div', {
      className: 'app-row',
      role: 'row',
      'aria-rowindex': index + 2,
      'data-app': name,
      style: { top: `${index * h}px`, height: `${h}px` },
      onclick: (e) => { if (e.target.tagName !== 'A') location.hash = href; },
    },
    el('span', { className: 'c-name', role: 'cell' }, el('a', { href }, name)),
    el('span', { className: 'c-project muted', role: 'cell' }, projectOf(app)),
    el('span', { className: 'c-sync', role: 'cell' }, badge('sync', syncOf(app).status, SYNC)),
    el('span', { className: 'c-health', role: 'cell' }, badge('health', health.status, HEALTH, health.message)),
    el('span', { className: 'c-rev mono', role: 'cell', title: syncOf(app).revision || undefined }, shortRev(syncOf(app).revision)),
    el('span', { className: 'c-dest', role: 'cell', title: clusterOf(app) }, [destNamespace(app), clusterOf(app).replace(/^https?:\/\//, '')].filter(Boolean).join(' @ ')),
    el('span', { className: 'c-source', role: 'cell', title: `${src.repoURL || ''} ${src.path || src.chart || ''}` },
      el('span', { className: 'repo' }, (src.repoURL || '').replace(/^https?:\/\//, '')),
      src.path || src.chart ? el('span', { className: 'path' }, src.path || src.chart) : null));
  }

  function field(label, ...value) {
    return [el('dt', {}, label), el('dd', {}, ...value)];
  }

  function card(title, ...body) {
    return el('section', { className: 'card' }, el('h2', {}, title), ...body);
  }

  function table(headers, rows, emptyText) {
    if (rows.length === 0) return el('p', { className: 'empty' }, emptyText);
    return el('div', { className: 'table-scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
  }

  // ---- one application ------------------------------------------------

  // What a condition means and what to do about it, in words.
  const CONDITION_HELP = [
    ['ComparisonError', 'Plumb cannot compare Git with the cluster, so it shows no reliable sync status.',
      'Check the repository URL, path and target revision, that the manifests render (plumb render), and the repository credentials; then Refresh.'],
    ['InvalidSpecError', 'The Application itself is invalid, so nothing is deployed.',
      'Fix its manifest (source, destination or project) and apply it again.'],
    ['SyncError', 'The last sync failed.',
      'Read the message below, fix the manifests or the permission it names, then Sync again.'],
    ['OrphanedResourceWarning', 'Objects in the destination namespace belong to no application.',
      'Add them to Git or delete them (the project\'s orphanedResources setting controls this warning).'],
    ['SharedResourceWarning', 'Another application manages an object of this one.',
      'Keep each object in one application only, or they will overwrite each other.'],
    ['RepeatedResourceWarning', 'The same object is in the manifests more than once.',
      'Remove the duplicate from Git.'],
    ['ExcludedResourceWarning', 'Some objects of the manifests are excluded from management.',
      'See resource.exclusions and resource.inclusions in argocd-cm.'],
    ['DeletionError', 'Deleting the application or its objects failed.',
      'Read the message; the finalizer stays until its objects are gone.'],
    ['SyncPrunedResourceWarning', 'A sync left objects that prune would delete.',
      'Sync with prune once you are sure they should go.'],
  ];

  function explain(condition) {
    const msg = condition.message || '';
    const known = CONDITION_HELP.find(([type]) => type === condition.type);
    let advice = known ? known[2] : 'Read the message below.';
    if (/forbidden|permission denied|cannot (create|patch|get|list)/i.test(msg)) {
      advice = 'The cluster refused Plumb: give its service account the RBAC permission the message names, or allow the kind in the project.';
    } else if (/authentication|credentials|could not read username|terminal prompts disabled/i.test(msg)) {
      advice = 'The repository wants credentials: add a repository Secret (see "Repositories" in the README), then Refresh.';
    } else if (/unknown revision|couldn.t find remote ref|not a valid revision|does not exist in/i.test(msg)) {
      advice = 'The target revision or path is not in the repository: correct the Application\'s targetRevision or path, or push it.';
    } else if (/not permitted in project|is not permitted|not allowed/i.test(msg)) {
      advice = 'The project does not allow this: add the repository, destination or kind to the AppProject.';
    }
    return { summary: known ? known[1] : `${condition.type}.`, advice };
  }

  function renderConditions(conditions) {
    return el('ul', { className: 'conditions' }, conditions.map((c) => {
      const { summary, advice } = explain(c);
      return el('li', { className: /Error/.test(c.type) ? 'error' : 'warn', 'data-type': c.type },
        el('strong', {}, summary), ' ', el('span', {}, advice),
        el('div', { className: 'message muted' }, `${c.type}: ${c.message || ''}`,
          c.lastTransitionTime ? ` (since ${time(c.lastTransitionTime)})` : ''));
    }));
  }

  function deleteApp(name) {
    if (!confirm(`Delete the application "${name}"?\n\nIts objects in the cluster are deleted too when it carries the resources finalizer.`)) return;
    act('delete', async () => {
      await api('DELETE', appPath(name));
      toast(`Application "${name}" is being deleted`, 'ok');
      location.hash = '#/';
    });
  }

  function renderDetail() {
    const name = state.selected;
    const app = state.detail || state.apps.get(name);
    const view = $('detail-view');
    const back = el('a', { href: listHref(), className: 'back' }, '← Applications');
    if (!app) {
      view.replaceChildren(back, el('p', { className: 'empty' }, state.detailError || 'Loading…'));
      return;
    }
    const status = app.status || {};
    const src = sourceOf(app);
    const dest = (app.spec && app.spec.destination) || {};
    const automated = app.spec && app.spec.syncPolicy && app.spec.syncPolicy.automated;
    const busy = state.busy;
    const maySync = canApp(app, 'sync');
    const mayDelete = canApp(app, 'delete');

    const prune = el('input', { type: 'checkbox', id: 'opt-prune', checked: state.options.prune,
      onchange: (e) => { state.options.prune = e.target.checked; } });
    const dryRun = el('input', { type: 'checkbox', id: 'opt-dry-run', checked: state.options.dryRun,
      onchange: (e) => { state.options.dryRun = e.target.checked; } });
    const actions = el('div', { className: 'actions' },
      maySync ? [
        el('label', { className: 'check', title: 'Delete tracked objects that are no longer in Git' }, prune, 'prune'),
        el('label', { className: 'check', title: 'Ask the API server what would change; change nothing' }, dryRun, 'dry run'),
        el('button', { className: 'primary sync', disabled: !!busy, onclick: () => sync(name, prune.checked, dryRun.checked) },
          busy === 'sync' ? 'Syncing…' : 'Sync'),
      ] : null,
      el('button', { className: 'refresh', disabled: !!busy, onclick: () => refresh(name, false), title: 'Compare with Git again' },
        busy === 'refresh' ? 'Refreshing…' : 'Refresh'),
      el('button', { className: 'hard-refresh', disabled: !!busy, onclick: () => refresh(name, true), title: 'Fetch the repository, render and compare again' },
        'Hard refresh'),
      mayDelete ? el('button', { className: 'danger delete', disabled: !!busy, onclick: () => deleteApp(name) }, 'Delete') : null,
      maySync === false ? el('span', { className: 'muted read-only', title: 'Your role may read this application but not sync it' }, 'read-only') : null);

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
      parts.push(el('p', { className: 'banner warn rolled-back' },
        `Rolled back to history ${status.rollback.historyId} (revision ${shortRev(status.rollback.revision)}) at ${time(status.rollback.at)}: `
        + 'the revision is pinned and automated sync is suspended until the next manual sync.'));
    }
    if ((status.conditions || []).length > 0) parts.push(card('What needs attention', renderConditions(status.conditions)));

    const op = status.operationState;
    if (op) {
      const dry = op.operation && op.operation.sync && op.operation.sync.dryRun;
      const running = op.phase === 'Running' || op.phase === 'Terminating';
      parts.push(el('section', { className: `card operation ${running ? 'running' : ''}` },
        el('h2', {}, running ? 'Operation in progress' : 'Last operation'),
        el('p', { className: 'op-phase' }, badge('phase', op.phase, PHASES), dry ? ' (dry run) ' : ' ', op.message || ''),
        el('p', { className: 'muted' }, `Started ${time(op.startedAt)}`, op.finishedAt ? `, finished ${time(op.finishedAt)}` : ''),
        renderOperationResults(op)));
    }

    parts.push(el('section', { className: 'card tree-card' }, el('h2', {}, 'Resource tree'), renderTreeCard(name, app)));

    const policy = automated
      ? `Automated${[automated.prune && 'prune', automated.selfHeal && 'self-heal'].filter(Boolean).map((f) => `, ${f}`).join('')}`
      : 'Manual';
    parts.push(card('Summary', el('dl', { className: 'fields' },
      field('Project', projectOf(app)),
      field('Repository', el('span', { className: 'mono' }, src.repoURL || '')),
      field('Path', el('span', { className: 'mono' }, src.path || src.chart || '.')),
      field('Target revision', src.targetRevision || 'HEAD'),
      field('Destination', [dest.server || dest.name || '', dest.namespace].filter(Boolean).join(' / ')),
      field('Sync policy', policy),
      labelsOf(app)[APPSET_LABEL]
        ? field('ApplicationSet', el('a', { href: appsetHref(labelsOf(app)[APPSET_LABEL]), className: 'generated-by' }, labelsOf(app)[APPSET_LABEL]))
        : null,
      field('Health', healthOf(app).message || healthOf(app).status || 'Unknown'),
      field('Last compared', time(status.reconciledAt) || '—'))));

    parts.push(el('section', { className: 'card diff-card' }, el('h2', {}, 'Diff'), renderDiff(name, app)));
    parts.push(el('section', { className: 'card history-card' }, el('h2', {}, 'History'), renderHistory(name, app, status.history || [], maySync)));
    parts.push(el('section', { className: 'card dora-card' }, el('h2', {}, 'DORA, last 30 days'), renderDoraBody(state.dora && state.dora.name === name ? state.dora : null)));

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

    // Keep the focus where it was across the re-render (keyboard users).
    const focused = document.activeElement && view.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    view.replaceChildren(...parts);
    if (focused) restoreFocus(view, focused);
  }

  // Enough of an element to find its replacement after a re-render.
  function focusKey(node) {
    const attrs = ['id', 'data-kind', 'data-name', 'data-id', 'data-mode', 'data-resource'];
    return { tag: node.tagName, cls: node.getAttribute('class'), attrs: attrs.map((a) => [a, node.getAttribute(a)]), text: node.textContent };
  }

  function restoreFocus(root, key) {
    const match = [...root.querySelectorAll(key.tag)].find((n) => n.getAttribute('class') === key.cls
      && key.attrs.every(([a, v]) => n.getAttribute(a) === v) && n.textContent === key.text);
    if (match) match.focus({ preventScroll: true });
  }

  function renderTreeCard(name, app) {
    if (state.treeError) return el('p', { className: 'banner error' }, state.treeError);
    if (state.tree === null) return el('p', { className: 'empty' }, 'Loading…');
    return window.Plumb.renderTree({
      name,
      sync: syncOf(app).status,
      health: healthOf(app).status,
      nodes: state.tree,
      resources: (app.status && app.status.resources) || [],
      childApp: (n, ns) => managedApp(n, ns),
      childHref: (child) => appHref(keyOf(child)),
      selected: state.diffSelected,
      onSelect: (node) => {
        state.diffSelected = window.Plumb.refKey(node);
        render();
        const diff = document.querySelector('#detail-view .diff-card');
        if (diff) diff.scrollIntoView({ block: 'start' });
      },
    });
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

  // A generator's parameters: a list generator's elements as a table, any
  // other generator's settings as key: value lines.
  function renderGenerator(generator, index) {
    const [type, spec] = Object.entries(generator || {})[0] || ['unknown', {}];
    let body;
    if (type === 'list' && Array.isArray(spec && spec.elements)) {
      const keys = [...new Set(spec.elements.flatMap((e) => Object.keys(e || {})))];
      body = table(keys, spec.elements.map((e) => el('tr', {}, keys.map((k) => {
        const v = e[k];
        return el('td', { className: 'mono' }, typeof v === 'string' ? v : JSON.stringify(v));
      }))), 'No elements.');
    } else {
      const lines = [];
      const walk = (value, path) => {
        if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
          for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
        } else {
          lines.push([path || type, typeof value === 'string' ? value : JSON.stringify(value)]);
        }
      };
      walk(spec, '');
      body = el('dl', { className: 'fields' }, lines.map(([k, v]) => field(k, el('span', { className: 'mono' }, v))));
    }
    return el('div', { className: 'generator', 'data-generator': type },
      el('h3', {}, `Generator ${index + 1}: ${type}`), body);
  }

  // A RollingSync's steps, each with the applications it selects and
  // where they are (Waiting, Pending, Progressing, Healthy).
  function renderSteps(set) {
    const steps = (set.spec && set.spec.strategy && set.spec.strategy.rollingSync && set.spec.strategy.rollingSync.steps) || [];
    if (!set.spec || !set.spec.strategy || set.spec.strategy.type !== 'RollingSync' || steps.length === 0) return null;
    const progress = (set.status && set.status.applicationStatus) || [];
    const STEP = ['Waiting', 'Pending', 'Progressing', 'Healthy'];
    return el('div', { className: 'steps' }, el('h3', {}, 'Progressive sync'),
      el('ol', {}, steps.map((step, i) => {
        const selector = (step.matchExpressions || [])
          .map((m) => `${m.key} ${m.operator} (${(m.values || []).join(', ')})`).join(' and ') || 'every application';
        const apps = progress.filter((p) => String(p.step) === String(i + 1));
        return el('li', { className: 'step', 'data-step': i + 1 },
          el('div', {}, el('strong', {}, `Step ${i + 1}`), ` ${selector}`,
            step.maxUpdate !== undefined ? el('span', { className: 'muted' }, ` (at most ${step.maxUpdate} at a time)`) : null),
          apps.length === 0 ? el('div', { className: 'muted' }, 'No applications.') : el('ul', { className: 'step-apps' }, apps.map((p) => el('li', {},
            el('a', { href: appHref(p.application) }, p.application), ' ',
            el('span', { className: `badge step-${STEP.includes(p.status) ? p.status : 'Waiting'}` }, p.status),
            p.message ? el('span', { className: 'muted' }, ` ${p.message}`) : null))));
      })));
  }

  function renderAppset(set) {
    const name = nameOf(set);
    const project = (set.spec && set.spec.template && set.spec.template.spec && set.spec.template.spec.project) || 'default';
    const mayDelete = can('applicationsets', 'delete', `${project}/${name}`);
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
        token && mayDelete ? el('div', { className: 'actions' },
          el('button', { className: 'primary confirm-deletion', disabled: !!state.busy, onclick: () => confirmDeletion(name, c, token) },
            state.busy === 'confirm' ? 'Confirming…' : 'Confirm deletion')) : null);
    });
    return el('section', { className: 'card appset', 'data-appset': name },
      el('div', { className: 'appset-head' },
        el('h2', {}, el('a', { href: appsetHref(name) }, name)),
        setBadge(set),
        el('span', { className: 'muted' }, `${apps.length} application${apps.length === 1 ? '' : 's'}`)),
      el('div', { className: 'appset-apps' }, table(['Application', 'Sync', 'Health'], rows, 'No applications generated.')),
      items.length ? el('ul', { className: 'conditions' }, items) : null,
      renderSteps(set),
      el('details', {
        className: 'generators',
        open: state.appsetName === name || state.openGenerators.has(name),
        ontoggle: (e) => { if (e.target.open) state.openGenerators.add(name); else state.openGenerators.delete(name); },
      },
        el('summary', {}, 'Generators and their parameters'),
        ((set.spec && set.spec.generators) || []).map(renderGenerator)));
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

  // The diff of one resource at a time: the one picked in the tree or the
  // list above the diff, else the first that differs.
  function renderDiff(name, app) {
    const reload = el('button', { className: 'small', onclick: () => loadDiff(name, app) }, 'Reload');
    if (state.diffError) return [el('p', { className: 'banner error' }, state.diffError), reload];
    if (state.diff === null) return el('p', { className: 'empty' }, 'Loading…');
    if (state.diff.length === 0) return [el('p', { className: 'empty' }, 'No resources.'), reload];
    const keyOfRes = window.Plumb.refKey;
    const picked = state.diff.find((r) => keyOfRes(r) === state.diffSelected)
      || state.diff.find((r) => r.modified) || state.diff[0];
    const modified = state.diff.filter((r) => r.modified).length;
    const modeButton = (mode, text) => el('button', {
      type: 'button', className: `small mode ${state.diffMode === mode ? 'on' : ''}`, 'data-mode': mode,
      'aria-pressed': state.diffMode === mode ? 'true' : 'false',
      onclick: () => { state.diffMode = mode; localStorage.setItem('plumb.diffMode', mode); render(); },
    }, text);
    const picker = el('div', { className: 'diff-resources', role: 'list' }, state.diff.map((r) => el('button', {
      type: 'button',
      role: 'listitem',
      className: `small resource ${r === picked ? 'on' : ''} ${r.modified ? 'modified' : ''}`,
      'data-resource': keyOfRes(r),
      'aria-pressed': r === picked ? 'true' : 'false',
      title: r.modified ? 'Differs from Git' : 'Matches Git',
      onclick: () => { state.diffSelected = keyOfRes(r); render(); },
    }, r.modified ? '● ' : '', `${r.kind} ${r.name}`)));
    const title = `${picked.group ? `${picked.group}/` : ''}${picked.kind} ${picked.namespace ? `${picked.namespace}/` : ''}${picked.name}`;
    return [
      el('div', { className: 'diff-toolbar' },
        el('span', { className: 'muted' }, modified ? `${modified} of ${state.diff.length} differ from Git` : 'No differences between Git and the cluster.'),
        el('span', { className: 'actions' }, modeButton('unified', 'Unified'), modeButton('split', 'Side by side'), reload)),
      picker,
      el('div', { className: 'diff', 'data-resource': keyOfRes(picked) },
        el('h3', { className: 'mono' }, title),
        picked.modified
          ? window.Plumb.diffView(picked.diff, state.diffMode)
          : el('p', { className: 'empty' }, picked.liveState ? 'The live object matches Git.' : 'Not in the cluster.')),
    ];
  }

  function renderHistory(name, app, history, maySync) {
    const newest = history.length ? history[history.length - 1].id : null;
    const rows = [...history].reverse().map((h) => {
      const by = h.initiatedBy || {};
      const meta = revisionMeta(name, h.revision);
      const commit = meta === null
        ? el('span', { className: 'muted' }, h.revision ? 'loading…' : '')
        : (meta.error
          ? el('span', { className: 'muted', title: meta.error }, 'commit not available')
          : el('div', { className: 'commit' },
            el('div', { className: 'commit-message' }, (meta.message || '').split('\n')[0]),
            el('div', { className: 'muted' }, [meta.author, time(meta.date)].filter(Boolean).join(', '))));
      return el('tr', { 'data-id': h.id },
        el('td', {}, String(h.id)),
        el('td', {}, time(h.deployedAt)),
        el('td', { className: 'mono', title: h.revision }, shortRev(h.revision)),
        el('td', {}, commit),
        el('td', {}, by.automated ? 'automated' : (by.username || 'manual')),
        el('td', { className: 'right' }, h.id === newest
          ? el('span', { className: 'muted' }, 'current')
          : (maySync ? el('button', { className: 'small rollback', 'data-id': h.id, disabled: !!state.busy, onclick: () => rollback(name, h) },
            state.busy === 'rollback' ? 'Rolling back…' : 'Rollback') : null)));
    });
    return table(['ID', 'Deployed', 'Revision', 'Commit', 'Initiated by', ''], rows, 'Not deployed yet.');
  }

  // ---- DORA -------------------------------------------------------------

  function stat(label, value, hint) {
    return el('div', { className: 'stat', title: hint }, el('div', { className: 'stat-value' }, value), el('div', { className: 'stat-label muted' }, label));
  }

  const percent = (r) => (r === null || r === undefined ? '—' : `${Math.round(r * 100)} %`);

  function doraStats(m) {
    return el('div', { className: 'stats' },
      stat('deployments / day', m.deploymentsPerDay === null || m.deploymentsPerDay === undefined ? '—' : m.deploymentsPerDay.toFixed(2),
        `${m.deployments} deployments in the window`),
      stat('lead time (median)', duration(m.leadTimeSeconds), 'From a commit to the sync that made it live'),
      stat('change failure rate', percent(m.changeFailureRate), `${m.failedDeployments} of ${m.deployments} deployments failed`),
      stat('time to restore (median)', duration(m.timeToRestoreSeconds), `${m.restores} restored, ${m.unrestored} not yet`));
  }

  function weeklyChart(weeks, caption) {
    return window.Plumb.charts.columns({
      caption,
      labels: weeks.map((w) => w.label),
      series: [
        { name: 'good', className: 'deploy', values: weeks.map((w) => w.deployments - w.failed) },
        { name: 'failed', className: 'failed', values: weeks.map((w) => w.failed) },
      ],
    });
  }

  function renderDoraBody(dora) {
    if (!dora) return el('p', { className: 'empty' }, 'Loading…');
    if (dora.error) return el('p', { className: 'banner error' }, dora.error);
    return el('div', { className: 'dora' }, doraStats(dora.report.total), weeklyChart(dora.weeks, 'Deployments per week (a failure followed the red ones)'));
  }

  function renderDora() {
    const view = $('dora-view');
    const d = state.doraView;
    const q = state.doraQuery;
    const projects = facets().choices.project;
    const setQuery = (next) => { location.hash = doraHref({ ...q, ...next }); };
    const controls = el('div', { className: 'toolbar' },
      el('h1', {}, 'DORA metrics'),
      el('label', { className: 'check' }, 'Project ',
        el('select', { id: 'dora-project', onchange: (e) => setQuery({ project: e.target.value }) },
          el('option', { value: '' }, 'All projects'),
          [...new Set([...projects, q.project].filter(Boolean))].map((p) => el('option', { value: p, selected: p === q.project }, p)))),
      el('label', { className: 'check' }, 'Window ',
        el('select', { id: 'dora-window', onchange: (e) => setQuery({ window: e.target.value }) },
          ['7d', '30d', '90d'].map((w) => el('option', { value: w, selected: w === q.window }, w)))));
    const parts = [controls];
    if (!d || d.loading) parts.push(el('p', { className: 'empty' }, 'Loading…'));
    else if (d.error) parts.push(el('p', { className: 'banner error' }, d.error));
    else {
      const r = d.report;
      parts.push(card(`${q.project || 'All projects'}, last ${q.window}`, doraStats(r.total)));
      parts.push(card('Trend', weeklyChart(d.weeks, 'Deployments per week (a failure followed the red ones)')));
      // Per project for all of them, per application within one.
      const rows = (q.project ? r.applications : r.projects).slice().sort((a, b) => b.deployments - a.deployments).slice(0, 15);
      const what = q.project ? 'application' : 'project';
      const { bars } = window.Plumb.charts;
      parts.push(el('section', { className: 'card' }, el('h2', {}, `Per ${what}`),
        rows.length === 0 ? el('p', { className: 'empty' }, 'Nothing deployed in the window.') : el('div', { className: 'chart-grid' },
          bars({ caption: 'Deployments', rows: rows.map((x) => ({ label: x.name, value: x.deployments, text: String(x.deployments) })) }),
          bars({ caption: 'Lead time (median)', rows: rows.map((x) => ({ label: x.name, value: x.leadTimeSeconds, text: duration(x.leadTimeSeconds) })) }),
          bars({ caption: 'Change failure rate', className: 'failed', rows: rows.map((x) => ({ label: x.name, value: x.changeFailureRate, text: percent(x.changeFailureRate) })) }),
          bars({ caption: 'Time to restore (median)', className: 'restore', rows: rows.map((x) => ({ label: x.name, value: x.timeToRestoreSeconds, text: duration(x.timeToRestoreSeconds) })) }))));
    }
    view.replaceChildren(...parts);
  }

  // ---- routing --------------------------------------------------------

  function decoded(text) {
    try { return decodeURIComponent(text); } catch (e) { return null; }
  }

  const listHref = () => {
    const query = new URLSearchParams(state.filters).toString();
    return `#/${query ? `?${query}` : ''}`;
  };
  const doraHref = (q) => {
    const query = new URLSearchParams(Object.entries(q).filter(([, v]) => v)).toString();
    return `#/dora${query ? `?${query}` : ''}`;
  };

  // #/?filters, #/apps/NAME, #/appsets[/NAME], #/dora?project=&window=
  function route() {
    const hash = location.hash;
    const app = /^#\/apps\/(.+)$/.exec(hash);
    const set = /^#\/appsets(?:\/(.+))?$/.exec(hash);
    const dora = /^#\/dora(?:\?(.*))?$/.exec(hash);
    const name = app ? decoded(app[1]) : null;
    let view = 'apps';
    if (name !== null) view = 'app';
    else if (set) view = 'appsets';
    else if (dora) view = 'dora';
    if (view === 'apps') {
      const query = /^#\/?\?(.*)$/.exec(hash);
      state.filters = filtersFromQuery(query ? query[1] : '');
      sessionStorage.setItem('plumb.listQuery', query ? query[1] : '');
    }
    if (view === 'appsets') state.appsetName = set[1] ? decoded(set[1]) : null;
    if ((view === 'appsets') !== (state.view === 'appsets')) followAppsets(view === 'appsets');
    if (view !== state.view) window.scrollTo(0, 0);
    state.view = view;
    if (view === 'dora') {
      const params = new URLSearchParams(dora[1] || '');
      state.doraQuery = { project: params.get('project') || '', window: params.get('window') || '30d' };
      if (!state.doraView || state.doraView.key !== JSON.stringify(state.doraQuery)) loadDoraView();
    }
    clearInterval(state.treeTimer);
    state.treeTimer = null;
    if (name !== state.selected) {
      state.selected = name;
      state.detail = null;
      state.detailError = null;
      state.diff = null;
      state.diffError = null;
      state.diffKey = null;
      state.diffSelected = null;
      state.tree = null;
      state.treeError = null;
      state.dora = null;
      if (name) {
        loadDetail(name, true);
        loadAppDora(name);
      }
      window.scrollTo(0, 0);
    }
    // Pods come and go without an event of the application.
    if (name) state.treeTimer = setInterval(() => loadTree(name), 10000);
    render();
  }

  // Keyboard: "/" goes to the filter, Escape leaves a page for the list.
  function onKey(event) {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName);
    if (event.key === '/' && !typing && state.view === 'apps') {
      event.preventDefault();
      $('filter').focus();
    } else if (event.key === 'Escape') {
      if (typing) { event.target.blur(); return; }
      if (state.view === 'app') location.hash = listHref();
      else if (state.view === 'appsets' && state.appsetName) location.hash = '#/appsets';
    }
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
    // The list's filters of this tab, for "← Applications" and Escape
    // from a page opened directly (the list's own URL has its filters).
    state.filters = filtersFromQuery(sessionStorage.getItem('plumb.listQuery') || '');
    route();
    // Names depend on the application namespace: learn it first (an older
    // or unreachable server: names alone).
    api('GET', 'settings')
      .then((s) => { state.home = (s && s.controllerNamespace) || null; })
      .catch(() => {})
      .finally(() => { loadList(); connect(); });
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const id of ['filter', 'f-label']) $(id).addEventListener('input', readFilterControls);
    for (const id of ['f-sync', 'f-health', 'f-project', 'f-namespace', 'f-cluster']) $(id).addEventListener('change', readFilterControls);
    $('f-clear').addEventListener('click', () => { setFilters({}); $('filter').focus(); });
    document.addEventListener('keydown', onKey);
    // Only the rows on screen exist: draw others as the list scrolls.
    let scrollQueued = false;
    const onScroll = () => {
      if (state.view !== 'apps' || scrollQueued) return;
      scrollQueued = true;
      requestAnimationFrame(() => { scrollQueued = false; renderRows(); });
    };
    window.addEventListener('scroll', onScroll, { passive: true });
    window.addEventListener('resize', onScroll);
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
