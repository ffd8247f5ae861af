// The status page's figures: /metrics and /healthz, polled once a second.
//
// Counters are shown as they are (all time, every worker summed); rates and
// latencies are differences between the newest poll and the oldest of the
// last WINDOW, divided by the time between them.  A figure that cannot be
// known says "unavailable" (a fetch failed) rather than keep an old value.
'use strict';

const POLL_MS = 1000;
const WINDOW = 10;          // polls a rate or a latency is computed over
const FETCH_TIMEOUT_MS = 2000;

let snaps = [];             // {t, m}: the last WINDOW + 1 good /metrics
let polls = 0;

function show(id, text, cls) {
  const e = document.getElementById(id);
  e.textContent = text;
  e.className = cls || '';
}

// parse: the Prometheus text as a Map from "name{labels}", exactly as the
// line writes them, to a number.
function parse(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    const r = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (r) m.set(r[1], Number(r[2]));
  }
  return m;
}

function labels(key) {
  const l = {};
  for (const r of key.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) l[r[1]] = r[2];
  return l;
}

// sum: every sample of NAME (any labels) for which KEEP(labels) holds.
function sum(m, name, keep) {
  let s = 0;
  for (const [k, v] of m) {
    if (k === name || (k.startsWith(name + '{') && (!keep || keep(labels(k)))))
      s += v;
  }
  return s;
}

// buckets: NAME's histogram as [upper bound in s, cumulative count], by bound.
function buckets(m, name) {
  const b = [];
  for (const [k, v] of m) {
    if (k.startsWith(name + '_bucket{')) {
      const le = labels(k).le;
      b.push([le === '+Inf' ? Infinity : Number(le), v]);
    }
  }
  return b.sort((x, y) => x[0] - y[0]);
}

// quantile: the Q-quantile in ms of the requests between two histograms
// (as Prometheus's histogram_quantile: linear within a bucket); null when
// there were none.  Beyond the last finite bound, ">bound".
function quantile(q, now, then) {
  const b = now.map(([le, c], i) => [le, c - (then[i] ? then[i][1] : 0)]);
  const total = b.length ? b[b.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < b.length; i++) {
    if (b[i][1] < rank) continue;
    const lo = i ? b[i - 1][0] : 0, clo = i ? b[i - 1][1] : 0;
    if (b[i][0] === Infinity) return '>' + ms(lo);
    return ms(lo + (b[i][0] - lo) * (rank - clo) / (b[i][1] - clo));
  }
  return null;
}

function ms(seconds) {
  const v = seconds * 1000;
  return (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + ' ms';
}

function percent(part, whole) {
  return whole > 0 ? (100 * part / whole).toFixed(1) + ' %' : 'no reads';
}

const IDS_METRICS = ['hit-ratio', 'hit-ratio-now', 'hits', 'misses', 'bypasses',
  'fills', 'fill-waits', 'invalidations', 'req-rate', 'req-rate-all', 'req-total',
  'latency-mean', 'latency-p50', 'latency-p99', 'pg-mean', 'pg-p50', 'pg-p99',
  'errors-5xx', 'redis-errors', 'postgres-errors', 'invalidation-failures',
  'workers', 'breaker', 'window'];

function showMetrics(m, t) {
  const req = (mm, keep) => sum(mm, 'orders_http_requests_total', keep);
  const api = l => l.route !== 'metrics' && l.route !== 'healthz';
  const reads = mm => sum(mm, 'orders_cache_hits_total') +
    sum(mm, 'orders_cache_misses_total') + sum(mm, 'orders_cache_bypasses_total');

  // a counter that went down: the metrics file is a new one, start again
  if (snaps.length && req(m) < req(snaps[snaps.length - 1].m)) snaps = [];
  snaps.push({ t, m });
  if (snaps.length > WINDOW + 1) snaps.shift();
  const old = snaps[0].m, dt = (t - snaps[0].t) / 1000;

  const hits = sum(m, 'orders_cache_hits_total');
  const hitsEl = document.getElementById('hits');
  if (hitsEl.dataset.first === '') hitsEl.dataset.first = String(hits);
  show('hits', String(hits));
  show('misses', String(sum(m, 'orders_cache_misses_total')));
  show('bypasses', String(sum(m, 'orders_cache_bypasses_total')));
  show('fills', String(sum(m, 'orders_cache_fills_total')));
  show('fill-waits', String(sum(m, 'orders_cache_fill_waits_total')));
  show('invalidations', String(sum(m, 'orders_cache_invalidations_total')));
  show('hit-ratio', percent(hits, reads(m)));
  show('req-total', String(req(m)));
  show('errors-5xx', String(req(m, l => /^5/.test(l.status))));
  show('redis-errors', String(sum(m, 'orders_redis_errors_total')));
  show('postgres-errors', String(sum(m, 'orders_postgres_errors_total')));
  show('invalidation-failures', String(sum(m, 'orders_cache_invalidation_failures_total')));
  show('workers', String(sum(m, 'orders_workers')));

  const br = ['closed', 'open', 'half_open']
    .map(s => [s, sum(m, 'orders_redis_breaker', l => l.state === s)])
    .filter(([, n]) => n > 0);
  show('breaker', br.length ? br.map(([s, n]) => n + ' ' + s.replace('_', '-')).join(', ') : 'none',
    br.some(([s]) => s !== 'closed') ? 'degraded' : 'ok');

  // rates and latencies need two polls
  const wait = dt > 0 ? null : '…';
  show('window', wait || dt.toFixed(0) + ' s');
  show('hit-ratio-now', wait || percent(hits - sum(old, 'orders_cache_hits_total'), reads(m) - reads(old)));
  show('req-rate', wait || ((req(m, api) - req(old, api)) / dt).toFixed(1));
  show('req-rate-all', wait || ((req(m) - req(old)) / dt).toFixed(1));
  // "none": no request (that asked Postgres) in the window
  for (const [prefix, name] of [['latency', 'orders_http_request_duration_seconds'],
    ['pg', 'orders_postgres_query_duration_seconds']]) {
    const n = sum(m, name + '_count') - sum(old, name + '_count');
    const s = sum(m, name + '_sum') - sum(old, name + '_sum');
    const now = buckets(m, name), then = buckets(old, name);
    show(prefix + '-mean', wait || (n > 0 ? ms(s / n) : 'none'));
    show(prefix + '-p50', wait || quantile(0.5, now, then) || 'none');
    show(prefix + '-p99', wait || quantile(0.99, now, then) || 'none');
  }
}

// showHealth: /healthz's answer (200, or 503 when Postgres is down, both
// JSON), or null when there was none (nginx's own 503 has no such fields).
function showHealth(h) {
  for (const id of ['postgres', 'redis']) {
    const v = h && (h[id] === 'ok' || h[id] === 'down') ? h[id] : 'unavailable';
    show(id, v, v);
  }
}

async function get(url, asJson) {
  try {
    const r = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (asJson) return await r.json();   // a 503 from /healthz says why
    return r.ok ? await r.text() : null;
  } catch (e) {
    return null;
  }
}

async function poll() {
  const [text, health] = await Promise.all([get('metrics', false), get('healthz', true)]);
  const t = Date.now();
  if (text !== null) {
    showMetrics(parse(text), t);
  } else {
    for (const id of IDS_METRICS) show(id, 'unavailable', 'unavailable');
  }
  showHealth(health);

  let state = 'ok';
  if (text === null || !health || !health.postgres) state = 'unavailable';
  else if (health.postgres !== 'ok') state = 'down';
  else if (health.redis !== 'ok') state = 'degraded';
  show('state', state === 'degraded' ? 'degraded: Redis down, reads from Postgres' :
    state === 'down' ? 'down: Postgres unreachable' : state, state);
  show('updated', new Date(t).toLocaleTimeString());
  document.body.dataset.polls = String(++polls);
  setTimeout(poll, POLL_MS);
}

poll();
