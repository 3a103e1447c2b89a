// The Lumen dashboard: pages drawn from the head's JSON API under /api/ (see
// scheduler/state_api.h). Plain JavaScript, no build step. Every table refreshes itself every
// few seconds and can be filtered (a text box) and sorted (click a column title).
'use strict';

const REFRESH_MS = 2000;
let refreshTimer = null;
let pageToken = 0;  // changes on every navigation, so late answers of the old page are dropped

// ---- Helpers ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

async function api(path) {
  const response = await fetch('/api/' + path, {credentials: 'same-origin'});
  if (response.status === 401) {
    window.location.href = '/login';
    throw new Error('not logged in');
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
  return body;
}

async function post(path) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'X-Lumen-Request': '1'},
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
  return body;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return (unit === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[unit];
}

function clock(ms) {
  return ms > 0 ? new Date(ms).toLocaleTimeString() : '';
}

function seconds(s) {
  if (!(s > 0)) return '';
  if (s < 60) return s.toFixed(1) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
  return Math.floor(s / 3600) + 'h' + String(Math.floor((s / 60) % 60)).padStart(2, '0') + 'm';
}

function resources(map) {
  return Object.entries(map || {}).map(([k, v]) => k + ': ' + v).join(', ');
}

function badge(state) {
  return el('span', {class: 'badge state-' + String(state).toLowerCase(), text: state});
}

function short(id) {
  return id ? id.slice(0, 12) : '';
}

// Ids in full: those minted by one process share their first half.
function idCell(id) {
  return el('span', {class: 'id', title: id, text: id});
}

// A link to the logs page for `params` (e.g. {actor: id}).
function logLink(params, label = 'log') {
  return el('a', {href: '#/logs?' + new URLSearchParams(params).toString(), class: 'log-link',
                  text: label});
}

function setStatus(text, isError = false) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.className = isError ? 'status error' : 'status';
}

// ---- A sortable, filterable table that refreshes itself ---------------------------------------

// columns: [{title, value(row) -> sortable value, cell(row) -> Node or text (optional)}]
class LiveTable {
  constructor(id, columns, fetchRows, options = {}) {
    this.id = id;
    this.columns = columns;
    this.fetchRows = fetchRows;
    this.sortColumn = options.sortColumn ?? -1;
    this.sortDescending = options.sortDescending ?? false;
    this.filter = '';
    this.rows = [];
    this.total = 0;
    this.rowClass = options.rowClass || (() => '');
    this.filterBox = el('input', {type: 'search', placeholder: 'filter rows', class: 'filter',
                                  id: id + '-filter'});
    this.filterBox.addEventListener('input', () => {
      this.filter = this.filterBox.value.toLowerCase();
      this.render();
    });
    this.count = el('span', {class: 'count'});
    this.table = el('table', {id: id + '-table', class: 'live'});
    this.node = el('section', {class: 'table-box'},
                   el('div', {class: 'toolbar'}, this.filterBox, this.count,
                      ...(options.toolbar || [])),
                   this.table);
  }

  async refresh() {
    const result = await this.fetchRows();
    this.rows = result.rows;
    this.total = result.total ?? result.rows.length;
    this.note = result.note || '';
    this.render();
  }

  rowText(row) {
    return this.columns.map((c) => String(c.value(row) ?? '')).join(' ').toLowerCase();
  }

  render() {
    let rows = this.rows.filter((row) => !this.filter || this.rowText(row).includes(this.filter));
    if (this.sortColumn >= 0) {
      const value = this.columns[this.sortColumn].value;
      const sign = this.sortDescending ? -1 : 1;
      rows = rows.slice().sort((a, b) => {
        const x = value(a);
        const y = value(b);
        if (typeof x === 'number' && typeof y === 'number') return sign * (x - y);
        return sign * String(x ?? '').localeCompare(String(y ?? ''));
      });
    }
    const head = el('tr', {});
    this.columns.forEach((column, i) => {
      const arrow = i === this.sortColumn ? (this.sortDescending ? ' ▼' : ' ▲') : '';
      head.append(el('th', {
        text: column.title + arrow,
        onclick: () => {
          this.sortDescending = this.sortColumn === i ? !this.sortDescending : false;
          this.sortColumn = i;
          this.render();
        },
      }));
    });
    const body = el('tbody', {});
    for (const row of rows) {
      const tr = el('tr', {class: this.rowClass(row)});
      for (const column of this.columns) {
        const content = column.cell ? column.cell(row) : column.value(row);
        tr.append(el('td', {}, content ?? ''));
      }
      body.append(tr);
    }
    this.table.replaceChildren(el('thead', {}, head), body);
    let text = 'showing ' + rows.length + ' of ' + this.total;
    if (this.note) text += ' · ' + this.note;
    this.count.textContent = text;
  }
}

// ---- Charts (inline SVG) ------------------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// A line chart of series [{label, points: [[t, y]], class}] with a 0..max y axis.
function lineChart(title, series, format) {
  const width = 460;
  const height = 160;
  const pad = {left: 56, right: 10, top: 10, bottom: 22};
  const all = series.flatMap((s) => s.points);
  const root = svg('svg', {viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
                           'aria-label': title});
  const figure = el('figure', {class: 'chart-box'}, el('figcaption', {text: title}));
  figure.append(root);
  if (all.length < 2) {
    const text = svg('text', {x: width / 2, y: height / 2, 'text-anchor': 'middle',
                              class: 'chart-empty'});
    text.textContent = 'collecting samples…';
    root.append(text);
    return figure;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const yMax = Math.max(1e-9, ...all.map((p) => p[1])) * 1.1;
  const x = (t) => pad.left + (width - pad.left - pad.right) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => height - pad.bottom - (height - pad.top - pad.bottom) * v / yMax;
  for (const fraction of [0, 0.5, 1]) {
    const v = yMax * fraction;
    root.append(svg('line', {x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v),
                             class: 'grid'}));
    const label = svg('text', {x: pad.left - 4, y: y(v) + 4, 'text-anchor': 'end',
                               class: 'axis'});
    label.textContent = format(v);
    root.append(label);
  }
  const minutes = svg('text', {x: width - pad.right, y: height - 6, 'text-anchor': 'end',
                               class: 'axis'});
  minutes.textContent = 'last ' + Math.max(1, Math.round((t1 - t0) / 60000)) + ' min';
  root.append(minutes);
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => (j ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' +
                                      y(p[1]).toFixed(1)).join(' ');
    root.append(svg('path', {d, class: 'line series-' + i}));
    const legend = svg('text', {x: pad.left + 6 + 140 * i, y: pad.top + 10,
                                class: 'legend series-' + i});
    legend.textContent = s.label;
    root.append(legend);
  });
  return figure;
}

// ---- Pages --------------------------------------------------------------------------------------

function card(title, value, detail = '') {
  return el('div', {class: 'card'}, el('div', {class: 'card-title', text: title}),
            el('div', {class: 'card-value', text: value}),
            el('div', {class: 'card-detail', text: detail}));
}

function counts(map) {
  const parts = Object.entries(map || {}).map(([k, v]) => k + ' ' + v);
  return parts.length ? parts.join(' · ') : 'none';
}

const pages = {
  async overview(main, token) {
    const cards = el('div', {class: 'cards'});
    const charts = el('div', {class: 'charts'});
    const jobs = el('div', {});
    main.append(el('h2', {text: 'Overview'}), cards, charts, el('h3', {text: 'Running jobs'}),
                jobs);
    return async () => {
      const [overview, metrics] = await Promise.all([api('overview'), api('metrics')]);
      if (token !== pageToken) return;
      const cpu = overview.resources.CPU || {used: 0, total: 0};
      const other = Object.entries(overview.resources).filter(([k]) => k !== 'CPU')
                        .map(([k, v]) => `${k} ${v.used}/${v.total}`).join(' · ');
      cards.replaceChildren(
          card('Nodes', String(overview.nodes.alive),
               overview.nodes.dead + ' dead' +
                   (overview.nodes.unconfirmed ? `, ${overview.nodes.unconfirmed} unconfirmed`
                                               : '')),
          card('CPU in use', `${cpu.used} / ${cpu.total}`, other),
          card('Object store', bytes(overview.object_store.used),
               'of ' + bytes(overview.object_store.capacity) + ', ' +
                   overview.object_store.objects + ' objects'),
          card('Actors', String(Object.values(overview.actors).reduce((a, b) => a + b, 0)),
               counts(overview.actors)),
          card('Tasks', String(Object.values(overview.tasks).reduce((a, b) => a + b, 0)),
               counts(overview.tasks)),
          card('Running jobs', String(overview.running_jobs.length)));
      const samples = metrics.samples;
      charts.replaceChildren(
          lineChart('CPUs in use',
                    [{label: 'used', points: samples.map((s) => [s.time_ms, s.cpu_used])},
                     {label: 'total', points: samples.map((s) => [s.time_ms, s.cpu_total])}],
                    (v) => v.toFixed(1)),
          lineChart('Tasks finished per second',
                    [{label: 'tasks/s',
                      points: samples.map((s) => [s.time_ms, s.tasks_per_second])}],
                    (v) => v >= 1000 ? (v / 1000).toFixed(1) + 'k' : v.toFixed(0)),
          lineChart('Object store',
                    [{label: 'used', points: samples.map((s) => [s.time_ms, s.store_used])}],
                    bytes));
      jobs.replaceChildren(overview.running_jobs.length
                               ? el('ul', {}, ...overview.running_jobs.map((j) => el(
                                     'li', {}, el('a', {href: '#/logs?job=' + j.job_id,
                                                        text: j.job_id}),
                                     ' ', badge(j.state), ' ', j.entrypoint)))
                               : el('p', {class: 'muted', text: 'No job is running.'}));
    };
  },

  async nodes(main) {
    const opened = new Set();  // nodes whose worker list is unfolded, kept across refreshes
    const workers = (r) => {
      const details = el('details', {},
          el('summary', {text: r.num_workers + ' processes'}),
          el('ul', {}, ...r.workers.map((w) => el('li', {},
              `${w.kind} pid ${w.pid} ${w.state} `,
              w.worker_id ? logLink({worker: w.worker_id, node: r.node_id}) : ''))));
      details.open = opened.has(r.node_id);
      details.addEventListener('toggle', () => {
        if (details.open) opened.add(r.node_id);
        else opened.delete(r.node_id);
      });
      return details;
    };
    const table = new LiveTable('nodes', [
      {title: 'Node', value: (r) => r.node_id, cell: (r) => idCell(r.node_id)},
      {title: 'Address', value: (r) => r.address},
      // An unconfirmed node (recovered by a restarted head, not heard from yet) says why on
      // hover; what it has in use is unknown until it reports.
      {title: 'State', value: (r) => r.state, cell: (r) => {
        const b = badge(r.state);
        if (r.state_reason) b.title = r.state_reason;
        return b;
      }},
      {title: 'Head', value: (r) => (r.is_head ? 'yes' : '')},
      {title: 'CPU used / total', value: (r) => {
        const total = r.resources_total.CPU || 0;
        if (!r.resources_available) return `? / ${total}`;
        return `${total - (r.resources_available.CPU || 0)} / ${total}`;
      }},
      {title: 'Resources', value: (r) => resources(r.resources_total)},
      {title: 'Object store', value: (r) => r.store_used,
       cell: (r) => bytes(r.store_used) + ' / ' + bytes(r.store_capacity)},
      {title: 'Workers', value: (r) => r.num_workers, cell: workers},
      {title: 'Heartbeat', value: (r) => r.last_heartbeat_ms,
       cell: (r) => r.state === 'UNCONFIRMED' ? 'not heard from yet'
                                              : r.last_heartbeat_ms + ' ms ago'},
      {title: 'Log', value: () => '', cell: (r) => logLink({node: r.node_id})},
    ], () => api('nodes'));
    main.append(el('h2', {text: 'Nodes'}), table.node);
    return () => table.refresh();
  },

  async actors(main) {
    const table = new LiveTable('actors', [
      {title: 'Actor ID', value: (r) => r.actor_id, cell: (r) => idCell(r.actor_id)},
      {title: 'Class', value: (r) => r.class_name},
      {title: 'Name', value: (r) => r.name},
      {title: 'State', value: (r) => r.state, cell: (r) => badge(r.state)},
      {title: 'PID', value: (r) => r.pid || ''},
      {title: 'Node', value: (r) => r.node_id, cell: (r) => idCell(r.node_id)},
      {title: 'IP', value: (r) => r.ip},
      {title: 'Restarts', value: (r) => r.restarts},
      {title: 'Uptime', value: (r) => r.uptime_s, cell: (r) => seconds(r.uptime_s)},
      {title: 'Resources', value: (r) => resources(r.required_resources)},
      {title: 'Death cause', value: (r) => r.death_cause,
       cell: (r) => el('span', {class: 'cause', title: r.death_cause, text: r.death_cause})},
      {title: 'Log', value: () => '',
       cell: (r) => (r.worker_id ? logLink({actor: r.actor_id}) : '')},
    ], () => api('actors'), {
      rowClass: (r) => 'actor-row class-' + r.class_name.replace(/[^A-Za-z0-9_-]/g, '_') +
                       ' row-' + r.state.toLowerCase(),
    });
    main.append(el('h2', {text: 'Actors'}), table.node);
    return () => table.refresh();
  },

  // Server-side filters (state, function) pick which of the recorded tasks are fetched; the
  // text box filters those. The hash may preset them: #/tasks?function=Square&state=FAILED.
  async tasks(main, token, query) {
    const preset = new URLSearchParams(query);
    const state = el('select', {id: 'tasks-state'},
                     ...['', 'SUBMITTED', 'SCHEDULED', 'RUNNING', 'FINISHED', 'FAILED']
                            .map((s) => el('option', {value: s, text: s || 'any state'})));
    state.value = preset.get('state') || '';
    const functionSelect = el('select', {id: 'tasks-function'},
                              el('option', {value: '', text: 'any function'}));
    const summary = await api('summary/tasks');
    for (const f of summary.functions) {
      functionSelect.append(el('option', {value: f.function, text: f.function}));
    }
    if (preset.get('function')) {
      if (![...functionSelect.options].some((o) => o.value === preset.get('function'))) {
        functionSelect.append(el('option', {value: preset.get('function'),
                                            text: preset.get('function')}));
      }
      functionSelect.value = preset.get('function');
    }
    const fetchTasks = () => {
      const params = new URLSearchParams({limit: '1000'});
      if (state.value) params.set('state', state.value);
      if (functionSelect.value) params.set('function', functionSelect.value);
      return api('tasks?' + params.toString());
    };
    const table = new LiveTable('tasks', [
      {title: 'Task ID', value: (r) => r.task_id, cell: (r) => idCell(r.task_id)},
      {title: 'Function', value: (r) => r.function},
      {title: 'Type', value: (r) => r.type},
      {title: 'State', value: (r) => r.state, cell: (r) => badge(r.state)},
      {title: 'Node', value: (r) => r.node_id, cell: (r) => idCell(r.node_id)},
      {title: 'Worker PID', value: (r) => r.worker_pid || ''},
      {title: 'Start', value: (r) => r.start_ms || r.scheduled_ms,
       cell: (r) => clock(r.start_ms || r.scheduled_ms)},
      {title: 'Duration', value: (r) => r.duration_ms,
       cell: (r) => (r.duration_ms > 0 ? (r.duration_ms / 1000).toFixed(3) + 's' : '')},
      {title: 'Retries', value: (r) => r.attempt},
      {title: 'Error', value: (r) => r.error || r.last_error,
       cell: (r) => el('span', {class: 'cause', title: r.error || r.last_error,
                                text: r.error || (r.last_error ? 'retried: ' + r.last_error : '')})},
      {title: 'Log', value: () => '', cell: (r) => (r.worker_id ? logLink({task: r.task_id}) : '')},
    ], fetchTasks, {toolbar: [state, functionSelect]});
    state.addEventListener('change', () => table.refresh());
    functionSelect.addEventListener('change', () => table.refresh());
    main.append(el('h2', {text: 'Tasks'}), table.node);
    return () => table.refresh();
  },

  async objects(main) {
    const table = new LiveTable('objects', [
      {title: 'Object ID', value: (r) => r.object_id, cell: (r) => idCell(r.object_id)},
      {title: 'Size', value: (r) => r.size, cell: (r) => bytes(r.size)},
      {title: 'State', value: (r) => r.state},
      {title: 'Owner', value: (r) => r.owner},
      {title: 'Locations', value: (r) => r.locations.join(', '),
       cell: (r) => r.locations.map(short).join(', ')},
      {title: 'References', value: (r) => r.reference},
    ], () => api('objects'), {sortColumn: 1, sortDescending: true});
    main.append(el('h2', {text: 'Objects'}), table.node);
    return () => table.refresh();
  },

  async jobs(main) {
    const table = new LiveTable('jobs', [
      {title: 'Job', value: (r) => r.job_id},
      {title: 'State', value: (r) => r.state, cell: (r) => badge(r.state)},
      {title: 'Command', value: (r) => r.entrypoint,
       cell: (r) => el('code', {text: r.entrypoint})},
      {title: 'PID', value: (r) => r.pid || ''},
      {title: 'Started', value: (r) => r.start_ms, cell: (r) => clock(r.start_ms)},
      {title: 'Ended', value: (r) => r.end_ms, cell: (r) => clock(r.end_ms)},
      {title: 'Message', value: (r) => r.message},
      {title: '', value: () => '', cell: (r) => el('span', {}, logLink({job: r.job_id}), ' ',
          r.state === 'RUNNING' || r.state === 'PENDING'
              ? el('button', {type: 'button', class: 'stop', text: 'stop', onclick: async () => {
                  try {
                    await post('/api/jobs/' + encodeURIComponent(r.job_id) + '/stop');
                    setStatus('stopping ' + r.job_id);
                  } catch (e) {
                    setStatus(e.message, true);
                  }
                }})
              : '')},
    ], () => api('jobs'));
    main.append(el('h2', {text: 'Jobs'}),
                el('p', {class: 'muted'}, 'Submit with ',
                   el('code', {text: 'lumen job submit -- COMMAND'}), '.'),
                table.node);
    return () => table.refresh();
  },

  async logs(main, token, query) {
    const params = new URLSearchParams(query);
    const picked = ['actor', 'task', 'worker', 'node', 'job'].filter((k) => params.get(k));
    if (picked.length === 0) {
      const [nodes, jobs] = await Promise.all([api('nodes'), api('jobs')]);
      const list = el('div', {});
      for (const node of nodes.rows) {
        list.append(el('h3', {}, 'Node ', idCell(node.node_id), ' ', node.address, ' ',
                          logLink({node: node.node_id}, 'daemon log')));
        list.append(el('ul', {}, ...node.workers.filter((w) => w.worker_id).map((w) => el('li', {},
            logLink({worker: w.worker_id, node: node.node_id}, w.worker_id),
            ` ${w.kind} pid ${w.pid} ${w.state}`))));
      }
      if (jobs.rows.length) {
        list.append(el('h3', {text: 'Jobs'}),
                    el('ul', {}, ...jobs.rows.map((j) => el('li', {},
                                                           logLink({job: j.job_id}, j.job_id), ' ',
                                                           badge(j.state)))));
      }
      main.append(el('h2', {text: 'Logs'}),
                  el('p', {class: 'muted',
                           text: 'Pick a worker, a node or a job; actor and task rows link ' +
                                 'to their worker\'s log.'}),
                  list);
      return null;
    }
    const title = el('h2', {text: 'Log of ' + picked.map((k) => k + ' ' + params.get(k))
                                                .join(', ')});
    const follow = el('input', {type: 'checkbox', id: 'follow', checked: ''});
    const info = el('span', {class: 'count'});
    const pre = el('pre', {id: 'log-text', class: 'log'});
    main.append(title,
                el('div', {class: 'toolbar'},
                   el('label', {}, follow, ' follow'), info),
                pre);
    let next = -1;
    return async () => {
      if (next >= 0 && !follow.checked) return;
      const query = new URLSearchParams(params);
      query.set('max_bytes', String(1 << 20));
      if (next >= 0) query.set('offset', String(next));
      const chunk = await api('logs?' + query.toString());
      if (token !== pageToken) return;
      if (next < 0 && chunk.offset > 0) {
        pre.append('… (' + chunk.offset + ' earlier bytes not shown)\n');
      }
      pre.append(chunk.data);
      next = chunk.next_offset;
      info.textContent = (chunk.node_id ? 'node ' + short(chunk.node_id) + ' · ' : '') +
                         bytes(chunk.size);
      if (follow.checked && chunk.data) window.scrollTo(0, document.body.scrollHeight);
    };
  },
};

// ---- Router ---------------------------------------------------------------------------------

async function show() {
  if (refreshTimer !== null) clearInterval(refreshTimer);
  refreshTimer = null;
  const token = ++pageToken;
  const hash = window.location.hash.replace(/^#\/?/, '') || 'overview';
  const [name, query = ''] = hash.split('?');
  const page = pages[name] ? name : 'overview';
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.page === page);
  }
  const main = document.getElementById('main');
  main.replaceChildren();
  try {
    const refresh = await pages[page](main, token, query);
    if (!refresh || token !== pageToken) return;
    let busy = false;
    const tick = async () => {
      if (busy) return;  // a slow answer is not asked for twice
      busy = true;
      try {
        await refresh();
        if (token === pageToken) setStatus('updated ' + new Date().toLocaleTimeString());
      } catch (e) {
        if (token === pageToken) setStatus(e.message, true);
      } finally {
        busy = false;
      }
    };
    await tick();
    if (token === pageToken) refreshTimer = setInterval(tick, REFRESH_MS);
  } catch (e) {
    setStatus(e.message, true);
  }
}

document.getElementById('logout').addEventListener('click', async () => {
  await post('/logout');
  window.location.href = '/login';
});
window.addEventListener('hashchange', show);
show();
