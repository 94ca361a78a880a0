// The grid's behaviour: filters by verdict and check, the counts of what is shown, the panel of
// the clicked cell, and the page's state in its URL fragment. Text from the report is only
// ever set with textContent, never parsed as markup.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  let data;
  try {
    data = JSON.parse($('bm-data').textContent);
  } catch (e) {
    data = {};
  }
  const verdicts = Array.isArray(data.verdicts) ? data.verdicts : [];
  const cells = Array.isArray(data.cells) ? data.cells : [];
  const marks = Array.from(document.querySelectorAll('#grid .mark'));
  let selected = null;

  // The counts the page was written with, against its data: a page that disagrees says so.
  function selfCheck() {
    const problems = [];
    const count = {};
    verdicts.forEach((v) => { count[v] = 0; });
    cells.forEach((c) => { count[c.verdict] = (count[c.verdict] || 0) + 1; });
    if (verdicts.length === 0) problems.push('the page has no data');
    verdicts.forEach((v) => {
      const shown = $('count-' + v);
      if (!shown || shown.textContent !== String(count[v])) {
        problems.push(v + ': the header says ' + (shown ? shown.textContent : 'nothing') +
          ', the data has ' + count[v]);
      }
    });
    const total = $('count-total');
    if (!total || total.textContent !== String(cells.length)) {
      problems.push('total: the data has ' + cells.length);
    }
    if (marks.length !== cells.length) {
      problems.push(marks.length + ' marks for ' + cells.length + ' cells');
    }
    marks.forEach((m) => {
      const c = cells[Number(m.dataset.i)];
      if (!c || c.id !== m.dataset.id || c.verdict !== m.dataset.verdict ||
          c.check !== m.dataset.check) {
        problems.push('the mark of ' + m.dataset.id + ' is not its cell');
      }
    });
    if (problems.length > 0) {
      const p = el('p', 'This page disagrees with its data: ' + problems.join('; '), 'alarm');
      p.id = 'mismatch';
      document.querySelector('header').prepend(p);
    }
  }

  // How the first mark of each verdict is drawn, as the browser computed it (the browser test
  // reads it: a known deviation must look unlike every other verdict).
  function recordStyles() {
    const looks = {};
    verdicts.forEach((v) => {
      const m = marks.find((x) => x.dataset.verdict === v);
      if (!m) return;
      const s = getComputedStyle(m);
      looks[v] = {
        background: s.backgroundColor,
        shape: s.clipPath + ' ' + s.borderRadius,
        glyph: getComputedStyle(m, '::after').content,
      };
    });
    $('computed-styles').textContent = JSON.stringify(looks);
  }

  const boxes = (name) =>
    Array.from(document.querySelectorAll('#filters input[name="' + name + '"]'));
  const unchecked = (name) => boxes(name).filter((b) => !b.checked).map((b) => b.value);

  function apply() {
    const hideVerdict = new Set(unchecked('verdict'));
    const hideCheck = new Set(unchecked('check'));
    const shown = {};
    verdicts.forEach((v) => { shown[v] = 0; });
    let total = 0;
    marks.forEach((m) => {
      const hide = hideVerdict.has(m.dataset.verdict) || hideCheck.has(m.dataset.check);
      m.hidden = hide;
      if (!hide) {
        shown[m.dataset.verdict] = (shown[m.dataset.verdict] || 0) + 1;
        total += 1;
      }
    });
    document.querySelectorAll('#grid .group').forEach((g) => {
      g.hidden = !g.querySelector('.mark:not([hidden])');
    });
    document.querySelectorAll('#grid tbody tr').forEach((r) => {
      r.classList.toggle('empty', !r.querySelector('.mark:not([hidden])'));
    });
    verdicts.forEach((v) => {
      const s = $('shown-' + v);
      if (s) s.textContent = String(shown[v]);
    });
    const t = $('shown-total');
    if (t) t.textContent = String(total);
    saveHash();
  }

  // The fragment: hide=VERDICT,...&hidecheck=CHECK,...&cell=ID (each part URI-encoded).
  function readHash() {
    const params = {};
    location.hash.replace(/^#/, '').split('&').forEach((part) => {
      const at = part.indexOf('=');
      if (at < 0) return;
      try {
        params[part.slice(0, at)] = decodeURIComponent(part.slice(at + 1));
      } catch (e) {
        // A fragment that is no URI encoding: ignored.
      }
    });
    return params;
  }

  function saveHash() {
    const parts = [];
    const list = (values) => values.map(encodeURIComponent).join(',');
    const hv = unchecked('verdict');
    const hc = unchecked('check');
    if (hv.length > 0) parts.push('hide=' + list(hv));
    if (hc.length > 0) parts.push('hidecheck=' + list(hc));
    if (selected !== null) parts.push('cell=' + encodeURIComponent(cells[selected].id));
    const hash = parts.length > 0 ? '#' + parts.join('&') : '';
    if (hash === location.hash) return;
    try {
      history.replaceState(null, '', hash === '' ? location.pathname + location.search : hash);
    } catch (e) {
      // Some browsers refuse history on file: pages; the fragment then stays as it was.
    }
  }

  function loadHash() {
    const params = readHash();
    const split = (v) => new Set(v ? v.split(',') : []);
    const hv = split(params.hide);
    const hc = split(params.hidecheck);
    boxes('verdict').forEach((b) => { b.checked = !hv.has(b.value); });
    boxes('check').forEach((b) => { b.checked = !hc.has(b.value); });
    if (params.cell !== undefined) {
      const i = cells.findIndex((c) => c.id === params.cell);
      if (i >= 0) show(i);
    }
    apply();
  }

  function show(i) {
    const c = cells[i];
    if (!c) return;
    selected = i;
    marks.forEach((m) => {
      m.setAttribute('aria-pressed', String(Number(m.dataset.i) === i));
    });
    const d = $('detail');
    d.replaceChildren();
    const h = el('h2', c.id);
    h.id = 'detail-id';
    d.append(h);
    const dl = el('dl');
    const row = (term, value, id) => {
      if (value === undefined || value === null || value === '') return;
      dl.append(el('dt', term));
      const dd = el('dd');
      if (value instanceof Node) dd.append(value); else dd.textContent = value;
      if (id) dd.id = id;
      dl.append(dd);
    };
    const verdict = el('span', c.verdict, 'verdict-word');
    const swatch = el('span', null, 'swatch');
    swatch.dataset.verdict = c.verdict;
    const v = el('span');
    v.append(swatch, ' ', verdict);
    row('verdict', v, 'detail-verdict');
    row('reason', c.reason, 'detail-reason');
    row('firmware', c.package + ', ' + c.descriptor + ' (' + c.executable + ')');
    row('QEMU', c.qemu + ', ' + c.mode + ', ' + c.accel);
    row('check', c.check + ' ' + c.variant);
    if (c.expectation) {
      const e = c.expectation;
      row('rule', e.rule + ' (profile ' + e.profile + ')', 'detail-rule');
      row('expected', e.expected, 'detail-expected');
      row('because', e.because, 'detail-because');
    }
    row('observed', c.observed, 'detail-observed');
    if (c.deviation) {
      row('known deviation', c.deviation.id + ': ' + c.deviation.reason, 'detail-deviation');
      row('reference', c.deviation.reference, 'detail-reference');
    }
    d.append(dl);
    if (c.evidence.length > 0) {
      d.append(el('h3', 'evidence'));
      const t = el('table');
      t.id = 'detail-evidence';
      c.evidence.forEach((e) => {
        const tr = el('tr');
        tr.append(el('td', e[0]), el('td', e[1]), el('td', e[2], 'line'));
        t.append(tr);
      });
      d.append(t);
    }
    if (c.argv) {
      d.append(el('h3', 'command line'));
      const pre = el('pre', c.argv);
      pre.id = 'detail-argv';
      d.append(pre);
    }
    const logs = el('p');
    if (c.log) {
      const a = el('a', c.log.path + '/');
      a.id = 'detail-log';
      a.setAttribute('href', c.log.href);
      logs.append('logs: ', a);
    } else {
      logs.textContent = 'no log folder (the cell did not boot)';
    }
    d.append(logs);
    saveHash();
  }

  const grid = $('grid');
  if (grid) {
    grid.addEventListener('click', (e) => {
      const m = e.target.closest('.mark');
      if (m) show(Number(m.dataset.i));
    });
  }
  $('filters').addEventListener('change', apply);
  window.addEventListener('hashchange', loadHash);
  selfCheck();
  recordStyles();
  loadHash();
})();
