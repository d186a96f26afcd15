// nodepool-ts dashboard: renders the launcher's status snapshot and re-renders on every
// server-sent `status` event; history charts are fetched from /api/v1/history once a minute.
// Plain DOM, no framework; all text goes through textContent (no HTML injection).
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let last = null;
  let lastAt = 0;
  let hours = 6;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function num(n, key) {
    return el('td', { class: 'num', 'data-col': key }, n);
  }

  function duration(s) {
    if (s === null || s === undefined) return '';
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (x) => String(x).padStart(2, '0');
    return (d > 0 ? d + 'd ' : '') + two(h) + ':' + two(m) + ':' + two(sec);
  }

  function fill(tbody, rows, empty, cols) {
    tbody.replaceChildren(...(rows.length ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: cols }, empty))]));
  }

  function bar(parts, total, mark) {
    const b = el('div', { class: 'bar' });
    const scale = Math.max(total, mark || 0, 1);
    for (const [cls, n] of parts) {
      if (n <= 0) continue;
      const s = el('span', { class: cls, title: cls.replace('_', ' ') + ': ' + n });
      s.style.width = (100 * n / scale) + '%';
      b.append(s);
    }
    if (mark) {
      const m = el('i', { class: 'mark', title: 'target ' + mark });
      m.style.left = Math.min(100, 100 * mark / scale) + '%';
      b.append(m);
    }
    return b;
  }

  const BUCKETS = [['ready', 'Ready'], ['building', 'Building'], ['in_use', 'In use'], ['hold', 'Hold'], ['deleting', 'Deleting'], ['failed', 'Failed']];

  function pill(id, ok, text, warn) {
    const p = $(id);
    p.textContent = text;
    p.className = 'pill ' + (ok ? 'ok' : warn ? 'warn' : 'bad');
  }

  function render(s) {
    last = s;
    lastAt = Date.now() / 1000;
    $('hostname').textContent = s.launcher.hostname;
    pill('zk', s.launcher.zookeeper === 'connected', 'ZooKeeper ' + s.launcher.zookeeper);
    pill('db', s.launcher.database, s.launcher.database ? 'database' : 'database unavailable');
    pill('leader', s.launcher.stats_leader, s.launcher.stats_leader ? 'stats leader' : 'stats follower', true);
    $('updated').textContent = 'updated ' + new Date(s.generated_at * 1000).toLocaleTimeString();

    $('totals').replaceChildren(...BUCKETS.map(([k, title]) =>
      el('div', { class: 'total ' + k, 'data-total': k }, el('div', { class: 'n' }, s.totals[k]), el('div', { class: 'k' }, title))),
      el('div', { class: 'total', 'data-total': 'total' }, el('div', { class: 'n' }, s.totals.total), el('div', { class: 'k' }, 'Total')));

    fill($('labels').tBodies[0], s.labels.map((l) => {
      const short = l.min_ready > 0 && l.ready + l.building < l.min_ready;
      return el('tr', { 'data-label': l.name },
        el('td', {}, l.name), ...BUCKETS.map(([k]) => num(l[k], k)), num(l.total, 'total'),
        el('td', { class: 'num' + (short ? ' short' : ''), 'data-col': 'min_ready' }, l.min_ready),
        num(l.waiting, 'waiting'),
        el('td', {}, bar(BUCKETS.map(([k]) => [k, l[k]]), l.total, l.min_ready)));
    }), 'no labels', 11);

    fill($('providers').tBodies[0], s.providers.map((p) =>
      el('tr', { 'data-provider': p.name },
        el('td', {}, p.name, p.launches ? el('span', { class: 'launches ' + p.launches, 'data-col': 'launches',
          title: 'launch-circuit-breaker: requests that need a new node are declined' },
          p.launches === 'suspended' ? 'launches suspended' : 'trial launch') : ''),
        el('td', {}, p.driver || ''), ...BUCKETS.map(([k]) => num(p[k], k)), num(p.total, 'total'),
        el('td', { class: 'num', 'data-col': 'max_servers' }, p.max_servers === null ? '∞' : p.max_servers),
        el('td', {}, bar(BUCKETS.map(([k]) => [k, p[k]]), p.max_servers === null ? p.total : p.max_servers, null)))),
    'no providers', 11);

    $('queue-count').textContent = s.requests.length + ' open';
    fill($('requests').tBodies[0], s.requests.map((r) =>
      el('tr', { 'data-request': r.id },
        el('td', {}, r.id), el('td', {}, el('span', { class: 'state ' + r.state }, r.state)), el('td', {}, r.requestor || ''),
        el('td', {}, r.node_types.join(', ')), el('td', {}, r.nodes.join(', ')),
        el('td', { class: 'num age', 'data-age': r.age }, duration(r.age)), el('td', {}, r.declined_by.join(', ')))),
    'no open requests', 7);

    fill($('failures').tBodies[0], s.failures.map((f) =>
      el('tr', { 'data-failure': f.result },
        el('td', {}, new Date(f.at * 1000).toLocaleTimeString()), el('td', {}, f.result),
        el('td', {}, f.node || f.request || ''), el('td', {}, f.provider || ''), el('td', {}, f.label || ''),
        el('td', { class: 'err' }, f.error || ''))),
    'no recent failures', 6);

    fill($('leases').tBodies[0], s.leases.map((l) =>
      el('tr', { 'data-lease': l.id },
        el('td', { title: l.id }, l.id.slice(0, 8)), el('td', {}, l.token), el('td', {}, el('span', { class: 'state ' + l.state }, l.state)),
        el('td', {}, Object.entries(l.labels).map(([k, v]) => k + '×' + v).join(', ')),
        el('td', {}, l.nodes.map((n) => n.interface_ip ? n.id + ' (' + n.interface_ip + ')' : n.id).join(', ')),
        el('td', { class: 'num expires', 'data-expires': l.expires_in }, duration(l.expires_in)))),
    'no open leases', 6);
  }

  // ages and lease countdowns move between snapshots
  setInterval(() => {
    if (!last) return;
    const dt = Date.now() / 1000 - lastAt;
    for (const td of document.querySelectorAll('td.age')) td.textContent = duration(Number(td.dataset.age) + dt);
    for (const td of document.querySelectorAll('td.expires')) td.textContent = duration(Number(td.dataset.expires) - dt);
  }, 1000);

  // ---------------------------------------------------------------- charts
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function chart(container, series, since, until) {
    const W = 400, H = 160, L = 36, R = 8, T = 8, B = 20;
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
    const values = series.flatMap((x) => x.points.map((p) => p.v)).filter((v) => v !== null);
    const x = (t) => L + (W - L - R) * (t - since) / Math.max(1, until - since);
    s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }), svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
    for (const [t, anchor] of [[since, 'start'], [until, 'end']]) {
      const label = svg('text', { x: x(t), y: H - 6, 'text-anchor': anchor });
      label.textContent = new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      s.append(label);
    }
    if (values.length === 0) {
      const t = svg('text', { class: 'nodata', x: (W + L) / 2, y: H / 2, 'text-anchor': 'middle' });
      t.textContent = 'no data in this window';
      s.append(t);
      container.replaceChildren(s);
      container.dataset.points = '0';
      return;
    }
    const top = Math.max(1, ...values) * 1.1;
    const y = (v) => T + (H - T - B) * (1 - v / top);
    for (const v of [0, top / 2, top]) {
      const label = svg('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' });
      label.textContent = v >= 10 ? Math.round(v) : v.toFixed(1);
      s.append(label);
    }
    for (const ser of series) {
      let d = '';
      let pen = false;
      for (const p of ser.points) {
        if (p.v === null) { pen = false; continue; }
        d += (pen ? ' L' : ' M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1);
        pen = true;
      }
      if (ser.area && d) d += ` L${x(until).toFixed(1)} ${y(0)} L${x(since).toFixed(1)} ${y(0)} Z`;
      s.append(svg('path', { class: ser.cls, d: d.trim() }));
      if (!ser.area) {
        // a bucket without neighbours draws no line: mark every bucket that has data
        for (const p of ser.points) {
          if (p.v !== null) s.append(svg('circle', { class: 'dot ' + ser.cls, cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5 }));
        }
      }
    }
    container.replaceChildren(s);
    container.dataset.points = String(values.length);
  }

  async function loadHistory() {
    try {
      const r = await fetch('/api/v1/history?hours=' + hours, { headers: { Accept: 'application/json' } });
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        $('history-note').textContent = e.message || ('history unavailable (' + r.status + ')');
        return;
      }
      const h = await r.json();
      $('history-note').textContent = 'from the database, ' + Math.round(h.bucket_seconds) + ' s buckets';
      const stat = (pts, k) => pts.map((p) => ({ t: p.t, v: p[k] }));
      chart($('chart-launch'), [{ cls: 'max', points: stat(h.launch_time, 'max') }, { cls: 'avg', points: stat(h.launch_time, 'avg') }], h.since, h.until);
      chart($('chart-latency'), [{ cls: 'max', points: stat(h.fulfilment_latency, 'max') }, { cls: 'avg', points: stat(h.fulfilment_latency, 'avg') }], h.since, h.until);
      chart($('chart-inuse'), [{ cls: 'area', area: true, points: h.in_use.map((p) => ({ t: p.t, v: p.value })) }], h.since, h.until);
    } catch (err) {
      $('history-note').textContent = 'history unavailable';
    }
  }

  for (const b of document.querySelectorAll('.windows button')) {
    b.addEventListener('click', () => {
      hours = Number(b.dataset.hours);
      for (const o of document.querySelectorAll('.windows button')) o.classList.toggle('active', o === b);
      void loadHistory();
    });
  }

  // ---------------------------------------------------------------- live feed
  function connect() {
    const es = new EventSource('/api/v1/events');
    es.addEventListener('status', (ev) => {
      pill('live', true, 'live');
      render(JSON.parse(ev.data));
    });
    es.addEventListener('open', () => pill('live', true, 'live'));
    es.addEventListener('error', () => pill('live', false, 'reconnecting…'));
  }

  connect();
  void loadHistory();
  setInterval(loadHistory, 60000);
})();
