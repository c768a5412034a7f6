// SPDX-License-Identifier: Apache-2.0
// The records API's page: plain JavaScript, no framework, no build step, nothing from elsewhere.
// The bearer token lives in sessionStorage (gone when the tab closes), never in a URL or a cookie.
// Every answer of the API that is not 2xx is shown with its JSON `error` and `reason`.
'use strict';

(() => {
  const TEXT_FIELDS = [
    ['fname', 'First name'], ['lname', 'Last name'], ['address', 'Address'], ['city', 'City'],
    ['state', 'State'], ['ssn', 'SSN'], ['email', 'Email'], ['dob', 'Date of birth'],
    ['contactphone', 'Contact phone'], ['drugallergies', 'Drug allergies'],
    ['preexistingconditions', 'Pre-existing conditions'], ['dateadmitted', 'Date admitted'],
    ['insurancedetails', 'Insurance details'],
  ];
  // The 30 measurements of the breast-cancer data set, named as data/wdbc/wdbc.csv's header.
  const WDBC = ['radius', 'texture', 'perimeter', 'area', 'smoothness', 'compactness', 'concavity',
    'concave_points', 'symmetry', 'fractal_dimension'];
  const MEASUREMENTS = [...WDBC.map((m) => `mean_${m}`), ...WDBC.map((m) => `${m}_se`),
    ...WDBC.map((m) => `worst_${m}`)];
  const OVERLAY_ALPHA = 0.45; // the mask in red over the slice, the slice still visible through it

  const $ = (id) => document.getElementById(id);
  let nextAfter = null;

  function field(container, name, label, type) {
    const l = document.createElement('label');
    l.htmlFor = `f-${name}`;
    l.textContent = label;
    const i = document.createElement('input');
    i.id = `f-${name}`;
    i.name = name;
    i.type = type;
    if (type === 'text') i.maxLength = 1024;
    else i.step = 'any';
    const wrap = document.createElement('div');
    wrap.append(l, i);
    container.append(wrap);
  }

  function showError(msg) {
    const e = $('error');
    e.textContent = msg;
    e.hidden = false;
  }
  function clearError() {
    $('error').hidden = true;
    $('error').textContent = '';
  }

  function apiBase() {
    const v = $('api-base').value.trim().replace(/\/+$/, '');
    if (v) return v;
    if (location.protocol === 'https:' || location.protocol === 'http:') return location.origin;
    throw new Error('Enter the API base URL (this page is not served by the API).');
  }

  class ApiError extends Error {}

  // One call to the API: the token as a bearer credential; a non-2xx answer becomes an ApiError
  // whose message is "HTTP <status> <error>: <reason>" from the API's JSON error body.
  async function api(method, path, { body, headers = {}, token } = {}) {
    const tok = token ?? sessionStorage.getItem('cloister.token');
    if (!tok) throw new ApiError('Sign in first: no bearer token.');
    let resp;
    try {
      resp = await fetch(apiBase() + path, {
        method, body, cache: 'no-store', credentials: 'omit', redirect: 'error',
        headers: { Authorization: `Bearer ${tok}`, Accept: 'application/json', ...headers },
      });
    } catch (e) {
      throw new ApiError(`Cannot reach the API at ${apiBase()}: ${e.message} (check the URL and its certificate).`);
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (!resp.ok) {
      if (json && json.error) throw new ApiError(`HTTP ${resp.status} ${json.error}: ${json.reason}`);
      throw new ApiError(`HTTP ${resp.status}: ${text.slice(0, 200) || resp.statusText}`);
    }
    if (json === null) throw new ApiError(`HTTP ${resp.status}: the answer is not JSON`);
    return { status: resp.status, json };
  }

  function run(fn) {
    return async (ev) => {
      if (ev) ev.preventDefault();
      clearError();
      try { await fn(); } catch (e) { showError(e instanceof ApiError ? e.message : `Error: ${e.message}`); }
    };
  }

  function pid() {
    const i = $('pid');
    if (!i.checkValidity()) throw new ApiError('Patient id: 1 to 64 of A-Z a-z 0-9 _ . -');
    return encodeURIComponent(i.value);
  }

  function showRecord(rec) {
    $('record').textContent = JSON.stringify(rec, null, 2);
  }

  async function signIn() {
    const tok = $('token').value.trim();
    if (!tok) throw new ApiError('Enter the bearer token the hospital gave you.');
    sessionStorage.setItem('cloister.base', $('api-base').value.trim());
    // A read the token must be allowed: a wrong token is refused here, not at the first use.
    await api('GET', '/patients?limit=1', { token: tok });
    sessionStorage.setItem('cloister.token', tok);
    $('token').value = '';
    $('signin-status').textContent = `Signed in to ${apiBase()}.`;
  }

  function signOut() {
    sessionStorage.removeItem('cloister.token');
    $('signin-status').textContent = 'Signed out.';
  }

  async function save() {
    const id = pid();
    const body = {};
    for (const [name] of TEXT_FIELDS) {
      const v = $(`f-${name}`).value;
      if (v !== '') body[name] = v;
    }
    for (const name of MEASUREMENTS) {
      const v = $(`f-${name}`).value.trim();
      if (v !== '') body[name] = v; // as typed: the API checks it is a decimal number
    }
    const { status, json } = await api('POST', `/patient/${id}`, {
      body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' },
    });
    showRecord(json);
    $('patient-status').textContent = status === 201 ? `Created ${json.id}.` : `Replaced ${json.id}.`;
  }

  async function load() {
    $('patient-status').textContent = '';
    const { json } = await api('GET', `/patient/${pid()}`);
    for (const [name] of TEXT_FIELDS) $(`f-${name}`).value = json[name] ?? '';
    for (const name of MEASUREMENTS) $(`f-${name}`).value = json[name] ?? '';
    showRecord(json);
  }

  async function del() {
    const { json } = await api('DELETE', `/patient/${pid()}`);
    showRecord(json);
    $('patient-status').textContent = `Deleted ${json.id}.`;
  }

  async function score() {
    $('score-out').value = '';
    const { json } = await api('GET', `/score/${pid()}`);
    $('score-out').value = String(json.score);
  }

  async function list(more) {
    const q = more && nextAfter ? `&after=${encodeURIComponent(nextAfter)}` : '';
    const { json } = await api('GET', `/patients?limit=100${q}`);
    if (!more) $('ids').replaceChildren();
    for (const id of json.ids) {
      const li = document.createElement('li');
      li.textContent = id;
      $('ids').append(li);
    }
    nextAfter = json.next;
    $('list-more').hidden = !nextAfter;
  }

  function b64bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i += 1) out[i] = s.charCodeAt(i);
    return out;
  }

  async function delineate() {
    const file = $('slice').files[0];
    if (!file) throw new ApiError('Choose a PNG slice first.');
    for (const id of ['lesion', 'bbox', 'model', 'note']) $(id).value = '';
    const form = new FormData();
    form.append('img', file, file.name);
    const { json } = await api('POST', '/delineate', { body: form });
    const slice = await createImageBitmap(file);
    // The mask's grey levels as they are in the PNG (no colour conversion): 255 = lesion.
    const mask = await createImageBitmap(new Blob([b64bytes(json.mask_png)], { type: 'image/png' }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    if (mask.width !== slice.width || mask.height !== slice.height) {
      throw new ApiError(`The mask is ${mask.width}x${mask.height}, the slice ${slice.width}x${slice.height}.`);
    }
    const { width: w, height: h } = slice;
    const m = new OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true });
    m.drawImage(mask, 0, 0);
    const mpx = m.getImageData(0, 0, w, h);
    const red = new ImageData(w, h);
    for (let i = 0; i < mpx.data.length; i += 4) {
      if (mpx.data[i] >= 128) {
        red.data[i] = 255;
        red.data[i + 3] = 255;
      }
    }
    const r = new OffscreenCanvas(w, h);
    r.getContext('2d').putImageData(red, 0, 0);
    const c = $('overlay');
    c.width = w;
    c.height = h;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(slice, 0, 0);
    ctx.globalAlpha = OVERLAY_ALPHA;
    ctx.drawImage(r, 0, 0);
    ctx.globalAlpha = 1;
    $('lesion').value = String(json.lesion_pixels);
    $('bbox').value = json.bbox
      ? `x ${json.bbox.x}, y ${json.bbox.y}, ${json.bbox.width} x ${json.bbox.height} px` : 'none';
    $('model').value = json.model;
    $('note').value = json.note;
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const [name, label] of TEXT_FIELDS) field($('text-fields'), name, `${label} (${name})`, 'text');
    for (const name of MEASUREMENTS) field($('measurements'), name, name, 'text');
    $('api-base').value = sessionStorage.getItem('cloister.base') ?? '';
    if (sessionStorage.getItem('cloister.token')) $('signin-status').textContent = 'Signed in.';
    $('signin-form').addEventListener('submit', run(signIn));
    $('signout').addEventListener('click', run(async () => signOut()));
    $('patient-form').addEventListener('submit', run(save));
    $('load').addEventListener('click', run(load));
    $('delete').addEventListener('click', run(del));
    $('score').addEventListener('click', run(score));
    $('clear').addEventListener('click', () => { $('patient-form').reset(); $('record').textContent = ''; });
    $('list').addEventListener('click', run(() => list(false)));
    $('list-more').addEventListener('click', run(() => list(true)));
    $('mri-form').addEventListener('submit', run(delineate));
  });
})();
