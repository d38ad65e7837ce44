// hvdeploy-web: a job page's live output and transitions (Server-Sent Events).
// Served as a file: the Content-Security-Policy allows no inline script. Text
// from the server only ever goes into textContent, never into HTML.
(function () {
  'use strict';

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function badge(status) {
    return el('span', 'badge s-' + String(status).replace(/[^a-z_]/g, ''), status);
  }

  function follow(live) {
    var out = document.getElementById('output');
    var timeline = document.getElementById('timeline');
    var status = document.getElementById('job-status');
    var es = new EventSource(live.getAttribute('data-stream'));
    live.textContent = 'live';
    es.addEventListener('open', function () { live.textContent = 'live'; live.className = 'live on'; });
    es.addEventListener('output', function (e) {
      var d = JSON.parse(e.data);
      var empty = document.getElementById('output-empty');
      if (empty) empty.parentNode.removeChild(empty);
      var stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
      var div = el('div', 'line ' + (d.stream === 'stderr' ? 'err' : 'out'));
      div.appendChild(el('span', 'meta', d.stage + ' #' + d.attempt));
      div.appendChild(document.createTextNode(' '));
      div.appendChild(el('span', 'text', d.line));
      out.appendChild(div);
      if (stick) out.scrollTop = out.scrollHeight;
    });
    es.addEventListener('transition', function (e) {
      var d = JSON.parse(e.data);
      var tr = el('tr');
      tr.appendChild(el('td', null, d.at || '-'));
      tr.appendChild(el('td', null, d.stage || '(job)'));
      tr.appendChild(el('td', null, (d.from_status || '(new)') + ' \u2192 ' + d.to_status));
      tr.appendChild(el('td', null, String(d.attempt)));
      tr.appendChild(el('td', null, d.worker || '-'));
      tr.appendChild(el('td', null, d.detail || ''));
      timeline.appendChild(tr);
      if (!d.stage && status) {
        status.textContent = '';
        status.appendChild(badge(d.to_status));
      }
    });
    es.addEventListener('end', function (e) {
      var d = JSON.parse(e.data);
      es.close();
      live.className = 'live off';
      live.textContent = 'finished (' + d.status + '): reload for the envelope';
      var cancel = document.getElementById('cancel');
      if (cancel) cancel.disabled = true;
    });
    es.addEventListener('error', function () {
      if (es.readyState !== EventSource.CLOSED) { live.textContent = 'reconnecting\u2026'; live.className = 'live'; }
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var live = document.getElementById('live');
    if (live && window.EventSource) follow(live);
  });
})();
