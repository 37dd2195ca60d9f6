// The invite web pages in a real headless Chromium (Debian's, launched through playwright-core by
// its path; nothing is downloaded), with JavaScript turned off, as a person goes through them:
//   node web_onboarding.mjs '{"chromium": "/usr/bin/chromium", "journey": "register",
//     "origin": "http://localhost:PORT", "artifacts": DIR, "timeout_ms": 30000, ...}'
// Journeys (their own keys in the config):
//   register  landing_url, setup_app, app, username, weak_password, password:
//             the landing page (desktop and phone), a setup page, the chosen app's registration
//             form, a refused password, then the account; prints {"event": "phone", viewport,
//             widest} (the right edge of the page's widest part on the phone), {"event":
//             "refused", message} and {"event": "registered", jid}
//   contact   landing_url, username, password[, contact_only_url]: first (if given) a contact
//             invite without an account, {"event": "contact-only", add_contact, register_manually};
//             then "register an account manually" from a contact invite's landing page; prints
//             {"event": "registered", jid}
//   reset     landing_url, password: a password-reset invite; prints {"event": "reset", jid}
//   refused   register_url, username, password: a registration the server refuses; prints
//             {"event": "refused", heading, message}
//   expired   url: prints {"event": "expired", status, heading}
//   race      register_url, usernames, password: one browser context per username (each its own
//             cookies, as separate browsers), the forms filled, then sent at the same moment;
//             prints {"event": "raced", results: [{heading, url, jid}]}
// Every page is screenshotted as <artifacts>/<name>.png. Requests to any other origin than
// `origin` are refused and reported, as are console errors (CSP violations show there) and
// HTTP errors: the last line is {"event": "checks", blocked, console_errors, http_errors}.
// On failure or at the deadline: <artifacts>/failure.png, a message on stderr, exit 1.

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2]);
const started = Date.now();
const remaining = () => Math.max(1000, config.timeout_ms - (Date.now() - started));
fs.mkdirSync(config.artifacts, { recursive: true });
const log = fs.createWriteStream(path.join(config.artifacts, "console.log"));
const blocked = [];
const consoleErrors = [];
const httpErrors = [];
let browser = null;
let current = null; // the page a failure screenshot shows
let step = "launching Chromium";
let failing = false;

const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const note = (line) => log.write(`${((Date.now() - started) / 1000).toFixed(3)} ${line}\n`);

async function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function close() {
  if (browser !== null) {
    const closing = browser;
    browser = null;
    try {
      await bounded(closing.close(), 10000, "closing Chromium");
    } catch (err) {
      process.stderr.write(`web_onboarding: ${err.message}\n`);
    }
  }
  await new Promise((resolve) => log.end(resolve));
}

async function fail(error) {
  if (failing) return;
  failing = true;
  let shot = "no screenshot (no page)";
  if (current !== null) {
    const file = path.join(config.artifacts, "failure.png");
    try {
      await bounded(current.screenshot({ path: file, fullPage: true }), 10000, "screenshot");
      shot = `screenshot ${file}`;
    } catch (err) {
      shot = `no screenshot (${err.message})`;
    }
  }
  process.stderr.write(
    `web_onboarding: failed while ${step}: ${error.stack ?? error}\n` +
      `web_onboarding: ${shot}; browser log ${path.join(config.artifacts, "console.log")}\n`,
  );
  await close();
  process.exit(1);
}

const deadline = setTimeout(() => fail(new Error(`not done within ${config.timeout_ms} ms`)), config.timeout_ms);
process.on("SIGTERM", () => fail(new Error("stopped by the test (SIGTERM)")));

const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
};
const DESKTOP = {
  viewport: { width: 1200, height: 900 },
  userAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
};

async function newPage(options = DESKTOP) {
  const context = await browser.newContext({ ...options, javaScriptEnabled: false, locale: "en-US" });
  await context.route(
    (url) => url.origin !== config.origin,
    (route) => {
      blocked.push(route.request().url());
      note(`blocked: ${route.request().url()}`);
      return route.abort("blockedbyclient");
    },
  );
  const page = await context.newPage();
  page.setDefaultTimeout(remaining());
  page.on("console", (msg) => {
    note(`console.${msg.type()}: ${msg.text()}`);
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  page.on("response", (res) => {
    note(`HTTP ${res.status()} ${res.request().method()} ${res.url()}`);
    if (res.status() >= 400 && !config.expected_http_errors?.includes(res.status())) {
      httpErrors.push(`${res.status()} ${res.url()}`);
    }
  });
  page.on("requestfailed", (req) => note(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
  current = page;
  return page;
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(config.artifacts, `${name}.png`), fullPage });
}

async function heading(page) {
  const h2 = page.locator("main h2").first();
  return (await h2.count()) ? (await h2.textContent()).trim() : (await page.locator("main h1").textContent()).trim();
}

async function register() {
  step = `opening the landing page ${config.landing_url.split("?")[0]}`;
  const phone = await newPage(PHONE);
  await phone.goto(config.landing_url, { waitUntil: "load" });
  await shot(phone, "landing-phone", false); // the first screen, as a phone shows it
  const right = async (selector) => {
    const boxes = await Promise.all((await phone.locator(selector).all()).map((l) => l.boundingBox()));
    return Math.max(...boxes.map((b) => b.x + b.width));
  };
  emit({
    event: "phone",
    viewport: PHONE.viewport.width,
    widest: Math.max(await right("main"), await right("main li.app"), await right("main .button")),
  });
  const page = await newPage();
  await page.goto(config.landing_url, { waitUntil: "load" });
  await shot(page, "landing");
  step = `picking ${config.setup_app}, which takes the invite itself: its setup page`;
  await page.getByTestId(`select-${config.setup_app}`).click();
  await page.getByTestId("accept-invite").waitFor({ state: "visible" });
  await shot(page, "setup");
  await page.goBack({ waitUntil: "load" });
  step = `picking ${config.app}: web registration`;
  await page.getByTestId(`select-${config.app}`).click();
  await page.getByTestId("register-form").waitFor({ state: "visible" });
  await shot(page, "register");
  step = "sending a password the policy refuses";
  await page.getByLabel("Username:").fill(config.username);
  await page.getByLabel("Password:").fill(config.weak_password);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
  const message = (await page.getByTestId("message").textContent()).trim();
  await shot(page, "register-error");
  emit({ event: "refused", message });
  step = "registering";
  await page.getByLabel("Password:").fill(config.password);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
  await page.getByTestId("jid").waitFor({ state: "visible" });
  await shot(page, "success");
  emit({ event: "registered", jid: (await page.getByTestId("jid").textContent()).trim() });
}

async function contact() {
  if (config.contact_only_url) {
    step = "opening a contact-only invite's landing page";
    const only = await newPage();
    await only.goto(config.contact_only_url, { waitUntil: "load" });
    await shot(only, "contact-only-landing");
    emit({
      event: "contact-only",
      add_contact: await only.getByTestId("add-contact").getAttribute("href"),
      register_manually: await only.getByTestId("register-manually").count(),
    });
  }
  step = "opening a contact invite's landing page";
  const page = await newPage();
  await page.goto(config.landing_url, { waitUntil: "load" });
  await shot(page, "contact-landing");
  step = "registering manually";
  await page.getByTestId("register-manually").click();
  await page.getByLabel("Username:").fill(config.username);
  await page.getByLabel("Password:").fill(config.password);
  await shot(page, "contact-register");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
  emit({ event: "registered", jid: (await page.getByTestId("jid").textContent()).trim() });
}

async function reset() {
  step = "opening a password-reset invite";
  const page = await newPage();
  await page.goto(config.landing_url, { waitUntil: "load" });
  await shot(page, "reset-landing");
  await page.getByTestId("reset-password").click();
  await page.getByLabel("New password:").fill(config.password);
  await shot(page, "reset-form");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Set new password" }).click()]);
  await shot(page, "reset-done");
  emit({ event: "reset", jid: (await page.getByTestId("jid").textContent()).trim() });
}

async function refused() {
  step = "registering where user-registering refuses";
  const page = await newPage();
  await page.goto(config.register_url, { waitUntil: "load" });
  await page.getByLabel("Username:").fill(config.username);
  await page.getByLabel("Password:").fill(config.password);
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
  await shot(page, "register-refused");
  const message = (await page.getByTestId("message").textContent()).trim();
  emit({ event: "refused", heading: await heading(page), message });
}

async function expired() {
  step = "opening an expired invite";
  const page = await newPage();
  const response = await page.goto(config.url, { waitUntil: "load" });
  await shot(page, "expired");
  emit({ event: "expired", status: response.status(), heading: await heading(page) });
}

async function race() {
  step = "opening the form in one browser per username";
  const pages = [];
  for (const username of config.usernames) {
    const page = await newPage();
    await page.goto(config.register_url, { waitUntil: "load" });
    await page.getByLabel("Username:").fill(username);
    await page.getByLabel("Password:").fill(config.password);
    pages.push(page);
  }
  step = "sending every form at once";
  await Promise.all(
    pages.map((page) =>
      Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]),
    ),
  );
  const results = [];
  for (const [i, page] of pages.entries()) {
    await shot(page, `race-${i}`);
    const jid = page.getByTestId("jid");
    results.push({
      heading: await heading(page),
      url: page.url(),
      jid: (await jid.count()) ? (await jid.textContent()).trim() : null,
    });
  }
  emit({ event: "raced", results });
}

try {
  browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    timeout: remaining(),
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const journeys = { register, contact, reset, refused, expired, race };
  await journeys[config.journey]();
  emit({ event: "checks", blocked, console_errors: consoleErrors, http_errors: httpErrors });
  clearTimeout(deadline);
  await close();
} catch (err) {
  clearTimeout(deadline);
  await fail(err);
}
