// SPDX-License-Identifier: Apache-2.0
// The records API's web page (web/) in a real browser: Debian's headless Chromium driven by npm
// playwright-core (exactly tests/browser/package-lock.json, `npm ci` by scripts/setup), against any
// deployment of the API:
//
//   node tests/browser/web_test.js --base-url https://api:4996 --token-file F --ca cacert.pem \
//        --png TCGA_CS_4944.png --artifacts DIR [--resolve api:4996:127.0.0.1] [--page-url URL]
//
// The page is the one the API serves at / (same origin), or, with --page-url, a copy on a static
// host of another origin: the test then types the API's base URL into the page (CORS). The token
// is read from a file, never argv.
// It signs in (a wrong token first: the API's 401 reason must show), creates patient_3 with the
// walk-through's fields, reads it back, lists, asks for the score (a number, or the API's 422
// NoMeasurements reason: patient_3 has no measurements), uploads the MRI slice, reads the lesion
// pixels, checks the canvas pixel by pixel (the mask in translucent red over the slice, nothing
// changed elsewhere), saves screenshots into DIR, deletes patient_3 and sees the 404.
//
// TLS: the browser trusts only what --ca vouches for. Node first verifies the server's chain
// against --ca (and the host name); Chromium is then told to accept that one server key
// (--ignore-certificate-errors-spki-list with the verified leaf's SPKI SHA-256), not to ignore
// certificate errors in general, and every request the page makes must go to the API's origin.
//
// Exit 0 pass, 1 fail, 77 skip (only when Chromium cannot start here; the reason is printed).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const tls = require('tls');

const CHROMIUM = '/usr/bin/chromium';
const OVERLAY_ALPHA = 0.45; // web/app.js draws the mask in red at this opacity
const TOLERANCE = 3; // canvas blending rounds: a few levels either way

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    if (!k.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${k}: see the header of ${__filename}`);
    a[k.slice(2)] = argv[i + 1];
  }
  for (const k of ['base-url', 'token-file', 'ca', 'png', 'artifacts']) {
    if (!a[k]) throw new Error(`--${k} is required (see the header of ${__filename})`);
  }
  return a;
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

// The server's leaf certificate, verified against the CA file for the URL's host name.
function verifiedSpki(url, ca, resolve) {
  const host = url.hostname;
  let addr = host;
  if (resolve) {
    const [rh, rp, ra] = resolve.split(':');
    if (rh === host && rp === (url.port || '443')) addr = ra;
  }
  return new Promise((ok, fail) => {
    const s = tls.connect({ host: addr, port: Number(url.port || 443), servername: /^[\d.]+$/.test(host) ? undefined : host,
      ca: fs.readFileSync(ca), rejectUnauthorized: true,
      checkServerIdentity: (_h, cert) => tls.checkServerIdentity(host, cert) }, () => {
      const der = s.getPeerCertificate(false).raw;
      s.end();
      const spki = new crypto.X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
      ok(crypto.createHash('sha256').update(spki).digest('base64'));
    });
    s.on('error', (e) => fail(new Error(`the API's certificate does not verify against ${ca} for ${host}: ${e.message}`)));
  });
}

async function launch(chromium, args) {
  if (!fs.existsSync(CHROMIUM)) return { skip: `${CHROMIUM} is not installed (apt-get install chromium; ./scripts/setup does)` };
  try {
    return { browser: await chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 60000 }) };
  } catch (e) {
    return { skip: `${CHROMIUM} does not start here: ${e.message.split('\n')[0]}` };
  }
}

// In the page: the canvas against what it must be, the slice with the mask blended in red.
async function overlayCheck(page, pngB64, maskB64, alpha, tol) {
  return page.evaluate(async ([png, mask, a, t]) => {
    const bytes = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
    const slice = await createImageBitmap(new Blob([bytes(png)], { type: 'image/png' }));
    const m = await createImageBitmap(new Blob([bytes(mask)], { type: 'image/png' }),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const w = slice.width; const h = slice.height;
    const px = (img) => {
      const c = new OffscreenCanvas(w, h).getContext('2d');
      c.drawImage(img, 0, 0);
      return c.getImageData(0, 0, w, h).data;
    };
    const orig = px(slice); const mk = px(m);
    const canvas = document.getElementById('overlay');
    const shown = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const r = { w, h, cw: canvas.width, ch: canvas.height, inside: 0, insideBad: 0, outside: 0, outsideBad: 0,
      reddened: 0 };
    for (let i = 0; i < orig.length; i += 4) {
      const inMask = mk[i] >= 128;
      const want = inMask ? [orig[i] * (1 - a) + 255 * a, orig[i + 1] * (1 - a), orig[i + 2] * (1 - a)]
        : [orig[i], orig[i + 1], orig[i + 2]];
      const bad = want.some((v, k) => Math.abs(v - shown[i + k]) > t);
      if (inMask) { r.inside += 1; if (bad) r.insideBad += 1; } else { r.outside += 1; if (bad) r.outsideBad += 1; }
      if (shown[i] - shown[i + 1] > 60) r.reddened += 1;
    }
    return r;
  }, [pngB64, maskB64, alpha, tol]);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const base = new URL(a['base-url']);
  const origin = base.origin;
  const pageUrl = a['page-url'] ? new URL(a['page-url']) : new URL(`${origin}/`);
  const shot = a['page-url'] ? 'static-host' : 'same-origin';
  const token = fs.readFileSync(a['token-file'], 'utf8').trim();
  const png = fs.readFileSync(a.png);
  fs.mkdirSync(a.artifacts, { recursive: true });

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    throw new Error(`npm playwright-core is not installed in ${__dirname}/node_modules: run ./scripts/setup (npm ci there)`);
  }
  const spki = await verifiedSpki(base, a.ca, a.resolve);
  const args = [`--ignore-certificate-errors-spki-list=${spki}`];
  if (a.resolve) {
    const [rh, rp, ra] = a.resolve.split(':');
    args.push(`--host-resolver-rules=MAP ${rh}:${rp} ${ra}:${rp}`);
  }
  const { browser, skip } = await launch(chromium, args);
  if (skip) {
    console.log(`SKIP: ${skip}`);
    return 77;
  }
  const problems = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    page.on('request', (r) => {
      if (!r.url().startsWith(`${origin}/`) && !r.url().startsWith(`${pageUrl.origin}/`)) {
        problems.push(`the page fetched ${r.url()}, outside the API's and the page's origins`);
      }
    });
    // Chromium logs every non-2xx answer as a console error; the test provokes 401, 404 and 422 on
    // purpose. Any other error (a CSP refusal, a script error) is a failure.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded with a status of')) {
        problems.push(`console error: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const alert = page.getByRole('alert');

    const resp = await page.goto(pageUrl.href);
    check(resp.status() === 200, `GET ${pageUrl.href} serves the page (HTTP ${resp.status()})`);
    console.log(`Content-Security-Policy: ${resp.headers()['content-security-policy'] ?? '(none)'}`);
    if (a['page-url']) await page.getByLabel('API base URL').fill(origin);

    // A wrong token is refused with the API's reason, and nothing is kept.
    await page.getByLabel('Bearer token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await alert.waitFor();
    const e401 = await alert.textContent();
    check(/^HTTP 401 Unauthorized: \S/.test(e401), `a wrong token shows the 401 and its reason: "${e401}"`);
    check(await page.evaluate(() => sessionStorage.getItem('cloister.token')) === null, 'a refused token is not kept');

    await page.getByLabel('Bearer token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#signin-status').filter({ hasText: 'Signed in' }).waitFor();
    check(await alert.isHidden(), 'the right token signs in');
    check(await page.evaluate(() => sessionStorage.getItem('cloister.token')) === token, 'the token is in sessionStorage');

    // The walk-through's patient, quotes and all.
    const fields = {
      fname: 'Jane', lname: 'Doe', address: "'123 Main Street'", city: 'Richmond', state: 'Washington',
      ssn: '123-223-2345', email: 'nr@aaa.com', dob: '01/01/2010', contactphone: '123-234-3456',
      drugallergies: "'Sulpha, Penicillin, Tree Nut'", preexistingconditions: "'diabetes, hypertension, asthma'",
      dateadmitted: '01/05/2010', insurancedetails: "'Primera Blue Cross'",
    };
    await page.getByLabel('Patient id', { exact: true }).fill('patient_3');
    for (const [k, v] of Object.entries(fields)) await page.getByLabel(`(${k})`, { exact: false }).fill(v);
    const saved = page.waitForResponse((r) => r.url().endsWith('/patient/patient_3') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Save patient' }).click();
    const sr = await saved;
    check([200, 201].includes(sr.status()), `POST /patient/patient_3 answers ${sr.status()}`);
    await page.locator('#record').filter({ hasText: 'patient_3' }).waitFor();
    const rec = JSON.parse(await page.locator('#record').textContent());
    for (const [k, v] of Object.entries(fields)) check(rec[k] === v, `stored ${k} is byte-exact: ${JSON.stringify(rec[k])}`);
    check(rec.id === 'patient_3' && (rec.score === null || typeof rec.score === 'number'), 'the record has id and score');

    // Read it back into an empty form.
    await page.getByRole('button', { name: 'Clear form' }).click();
    await page.getByLabel('Patient id', { exact: true }).fill('patient_3');
    await page.getByRole('button', { name: 'Load patient' }).click();
    await page.locator('#record').filter({ hasText: 'patient_3' }).waitFor();
    for (const [k, v] of Object.entries(fields)) {
      check(await page.getByLabel(`(${k})`, { exact: false }).inputValue() === v, `loaded ${k} into the form`);
    }

    await page.getByRole('button', { name: 'List patients' }).click();
    await page.getByRole('list', { name: 'Patient ids' }).getByText('patient_3', { exact: true }).waitFor();
    check(true, 'patient_3 is listed');

    // The score: a number, or the 422 with its reason (patient_3 has no measurements).
    await page.getByRole('button', { name: 'Get score' }).click();
    const scoreOut = page.getByLabel('Score');
    await page.waitForFunction(() => document.getElementById('score-out').value !== ''
      || !document.getElementById('error').hidden);
    if (await alert.isVisible()) {
      const e422 = await alert.textContent();
      check(/^HTTP 422 NoMeasurements: \S/.test(e422), `no measurements: the 422 and its reason show: "${e422}"`);
    } else {
      const s = Number(await scoreOut.textContent());
      check(s >= 0 && s <= 1, `the score is a probability: ${s}`);
    }

    // The MRI slice, delineated, drawn over.
    await page.getByLabel('MRI slice (PNG)').setInputFiles(a.png);
    const delin = page.waitForResponse((r) => r.url().endsWith('/delineate'));
    await page.getByRole('button', { name: 'Delineate' }).click();
    const dr = await delin;
    check(dr.status() === 200, `POST /delineate answers ${dr.status()}`);
    const dj = await dr.json();
    await page.waitForFunction(() => document.getElementById('lesion').value !== '');
    check(await alert.isHidden(), 'no error after the upload');
    const lesion = Number(await page.getByLabel('Lesion pixels').textContent());
    console.log(`lesion pixels: ${lesion}; bounding box: ${await page.getByLabel('Bounding box').textContent()}; model: ${dj.model}`);
    check(lesion === dj.lesion_pixels && lesion > 0, `the page shows the API's lesion pixels (${lesion})`);
    if (dj.bbox) {
      check(await page.getByLabel('Bounding box').textContent() === `x ${dj.bbox.x}, y ${dj.bbox.y}, ${dj.bbox.width} x ${dj.bbox.height} px`,
        'the page shows the bounding box');
    }
    check(/not for clinical use/i.test(await page.getByLabel('Note').textContent()), 'the not-for-clinical-use note shows');
    const ov = await overlayCheck(page, png.toString('base64'), dj.mask_png, OVERLAY_ALPHA, TOLERANCE);
    console.log(`canvas: ${JSON.stringify(ov)}`);
    check(ov.cw === ov.w && ov.ch === ov.h, `the canvas is the slice's size (${ov.w}x${ov.h})`);
    check(ov.inside === lesion, 'the mask has as many lesion pixels as the API says');
    check(ov.insideBad === 0, 'every lesion pixel is the slice blended with translucent red');
    check(ov.outsideBad === 0, 'every other pixel is the slice unchanged');
    check(ov.reddened >= lesion * 0.5, `the overlay is visibly red (${ov.reddened} reddish pixels)`);
    await page.getByRole('img', { name: 'Slice with mask' }).screenshot({ path: path.join(a.artifacts, `web-overlay-${shot}.png`) });
    await page.screenshot({ path: path.join(a.artifacts, `web-page-${shot}.png`), fullPage: true });
    console.log(`screenshots: ${path.join(a.artifacts, `web-page-${shot}.png`)}, web-overlay-${shot}.png`);

    // Delete, then the record is gone: the 404 and its reason show.
    await page.getByRole('button', { name: 'Delete patient' }).click();
    await page.locator('#record').filter({ hasText: '"deleted": true' }).waitFor();
    await page.getByRole('button', { name: 'Load patient' }).click();
    await alert.waitFor();
    const e404 = await alert.textContent();
    check(/^HTTP 404 NotFound: \S/.test(e404), `after Delete, Load shows the 404: "${e404}"`);
  } finally {
    await browser.close();
  }
  if (problems.length) throw new Error(problems.join('\n'));
  check(true, 'no console error, no request outside the API');
  return 0;
}

main().then((rc) => process.exit(rc), (e) => { console.error(`FAIL: ${e.message}`); process.exit(1); });
